"""RunTrigger workloads: built by one function, for the HTTP endpoint and any in-process path alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final, TypeVar

from sqlalchemy import select

from tocsin_server.db import models as m
from tocsin_server.db.cipher import PLAINTEXT, KwargsCipher
from tocsin_server.generated.models import RunTrigger, TaskInstanceStateName, WorkloadTaskInstance
from tocsin_server.services._json import raw_json

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

CHUNK: Final = 1000
"""Ids per IN list: well inside every driver's parameter limit."""
_T = TypeVar("_T")

TokenMinter = Callable[[WorkloadTaskInstance], str]
"""Issues a task-instance token (scope ``ti:<uuid>``) for the workload's task instance."""


def chunks(items: Iterable[_T], size: int = CHUNK) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def build_run_trigger_workloads(
    session: AsyncSession,
    trigger_ids: Iterable[int],
    *,
    mint_token: TokenMinter,
    holder: int | None = None,
    cipher: KwargsCipher = PLAINTEXT,
) -> list[RunTrigger]:
    """One workload per requested trigger (held by ``holder`` when given) that still serves someone.

    A trigger whose task instance already moved on and that feeds no asset watcher is left out: it waits
    for cleanup, and running it would fire into the void (Airflow learnt this in PR #38666).

    One Core query per chunk, trigger joined to its deferred task instance, read as plain rows: a triggerer
    ramping to a million triggers fetches them all, and building ORM objects for them was most of the cost.
    """
    t, ti = m.Trigger, m.TaskInstance
    workloads: list[RunTrigger] = []
    for batch in chunks(dict.fromkeys(trigger_ids)):
        query = (
            select(
                t.id,
                t.triggerer_id,
                t.classpath,
                t.kwargs,
                ti.id,
                ti.dag_id,
                ti.run_id,
                ti.task_id,
                ti.map_index,
                ti.try_number,
                ti.next_method,
                ti.trigger_timeout,
            )
            .outerjoin(ti, (ti.trigger_id == t.id) & (ti.state == TaskInstanceStateName.deferred.value))
            .where(t.id.in_(batch))
        )
        # By task instance id within a trigger: the first deferred one is the trigger's (as it always was). The
        # holder is checked here, not in SQL: given ``triggerer_id = holder`` the planner may walk all the job's
        # rows through that index and filter them by id (the statistics call one job's rows few), each call
        # costing as much as the job holds, when the primary key finds the thousand asked for directly.
        rows = [
            row
            for row in (await session.execute(query.order_by(t.id, ti.id))).tuples()
            if holder is None or row[1] == holder
        ]
        # Triggers with no deferred task instance serve someone only when they feed an asset watcher.
        serve_no_one = {row[0] for row in rows if row[4] is None}
        if serve_no_one:
            serve_no_one -= set(
                await session.scalars(
                    select(m.AssetWatcher.trigger_id).where(m.AssetWatcher.trigger_id.in_(serve_no_one))
                )
            )
        previous: int | None = None
        for (
            trigger_id,
            _holder,
            classpath,
            kwargs,
            ti_id,
            dag_id,
            run_id,
            task_id,
            map_index,
            try_number,
            method,
            timeout,
        ) in rows:
            if trigger_id == previous or trigger_id in serve_no_one:
                continue  # a second deferred task instance on one trigger, or a trigger that serves no one
            previous = trigger_id
            task_instance = None
            if ti_id is not None:
                task_instance = WorkloadTaskInstance(
                    id=ti_id,
                    dag_id=dag_id,
                    run_id=run_id,
                    task_id=task_id,
                    map_index=map_index,
                    try_number=try_number,
                    next_method=method,
                )
            workloads.append(
                RunTrigger(
                    trigger_id=trigger_id,
                    classpath=classpath,
                    kwargs=raw_json(cipher.open(kwargs)),
                    timeout_at=None if task_instance is None else timeout,
                    task_instance=task_instance,
                    token=None if task_instance is None else mint_token(task_instance),
                )
            )
    return workloads
