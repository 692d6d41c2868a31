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

TokenMinter = Callable[["m.TaskInstance"], str]
"""Issues a task-instance token (scope ``ti:<uuid>``) for a task instance id."""


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
    """
    workloads: list[RunTrigger] = []
    for batch in chunks(dict.fromkeys(trigger_ids)):
        query = select(m.Trigger).where(m.Trigger.id.in_(batch))
        if holder is not None:
            query = query.where(m.Trigger.triggerer_id == holder)
        triggers = list(await session.scalars(query.order_by(m.Trigger.id)))
        if not triggers:
            continue
        ids = [t.id for t in triggers]
        deferred: dict[int, m.TaskInstance] = {}
        for row in await session.scalars(
            select(m.TaskInstance)
            .where(m.TaskInstance.trigger_id.in_(ids), m.TaskInstance.state == TaskInstanceStateName.deferred.value)
            .order_by(m.TaskInstance.id)
        ):
            assert row.trigger_id is not None
            deferred.setdefault(row.trigger_id, row)
        watched = set(
            await session.scalars(select(m.AssetWatcher.trigger_id).where(m.AssetWatcher.trigger_id.in_(ids)))
        )
        for trigger in triggers:
            ti = deferred.get(trigger.id)
            if ti is None and trigger.id not in watched:
                continue
            workloads.append(
                RunTrigger(
                    trigger_id=trigger.id,
                    classpath=trigger.classpath,
                    kwargs=raw_json(cipher.open(trigger.kwargs)),
                    timeout_at=None if ti is None else ti.trigger_timeout,
                    task_instance=None
                    if ti is None
                    else WorkloadTaskInstance(
                        id=ti.id,
                        dag_id=ti.dag_id,
                        run_id=ti.run_id,
                        task_id=ti.task_id,
                        map_index=ti.map_index,
                        try_number=ti.try_number,
                        next_method=ti.next_method,
                    ),
                    token=None if ti is None else mint_token(ti),
                )
            )
    return workloads
