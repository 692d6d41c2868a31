"""Task instances: creation, state changes (deferral creates the trigger) and state reads."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import msgspec
from msgspec import UNSET
from sqlalchemy import func, select

from tocsin_server.db import models as m
from tocsin_server.db.cipher import PLAINTEXT, KwargsCipher
from tocsin_server.db.reads import GET_TASK_STATES, Reads
from tocsin_server.errors import ConflictError, NotFoundError
from tocsin_server.generated.models import (
    DeferredStateUpdate,
    TaskInstance,
    TaskInstanceBody,
    TaskInstanceList,
    TaskInstanceStateItem,
    TaskInstanceStateName,
    TaskInstanceStates,
    TaskInstanceStateUpdate,
)
from tocsin_server.services._db import insert_or_conflict
from tocsin_server.services._json import raw_json
from tocsin_server.services._time import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

S = TaskInstanceStateName
ALLOWED_FROM: Final[dict[str, frozenset[str]]] = {
    S.running: frozenset({S.none, S.scheduled, S.queued, S.up_for_retry}),
    S.success: frozenset({S.running}),
    S.failed: frozenset({S.running, S.queued, S.scheduled}),
    S.skipped: frozenset({S.none, S.scheduled, S.queued, S.running}),
    S.deferred: frozenset({S.running}),
}
"""The states a task instance may move to each state from. Leaving `deferred` is the server's own work."""

NOT_RUN: Final = frozenset({S.none, S.scheduled, S.queued})
"""Where a deferral with ``start_from_trigger`` comes from: a task instance that has not run (Airflow's
``start_from_trigger``). Kept apart from ``ALLOWED_FROM[deferred]`` on purpose: a worker deferring a task that is
no longer running (reset under it) still gets 409, only an explicit start from a trigger skips ``running``."""


def to_model(row: m.TaskInstance) -> TaskInstance:
    return TaskInstance(
        id=row.id,
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        try_number=row.try_number,
        state=S(row.state),
        trigger_id=row.trigger_id,
        trigger_timeout=row.trigger_timeout,
        next_method=row.next_method,
        next_kwargs=None if row.next_kwargs is None else raw_json(row.next_kwargs),
        start_from_trigger=row.start_from_trigger,
    )


def _not_found(task_instance_id: uuid.UUID) -> NotFoundError:
    return NotFoundError(f"task instance {task_instance_id} does not exist", field="task_instance_id")


async def get_task_instance(session: AsyncSession, task_instance_id: uuid.UUID) -> TaskInstance:
    row = await session.get(m.TaskInstance, task_instance_id)
    if row is None:
        raise _not_found(task_instance_id)
    return to_model(row)


async def create_task_instance(session: AsyncSession, body: TaskInstanceBody) -> TaskInstance:
    run = await session.scalar(
        select(m.DagRun.id).where(m.DagRun.dag_id == body.dag_id, m.DagRun.run_id == body.run_id)
    )
    if run is None:
        msg = f"dag run {body.dag_id}/{body.run_id} does not exist; create it first"
        raise NotFoundError(msg, field="run_id")
    map_index = -1 if body.map_index is UNSET else body.map_index
    row = m.TaskInstance(
        id=uuid.uuid4(),
        dag_id=body.dag_id,
        run_id=body.run_id,
        task_id=body.task_id,
        map_index=map_index,
        try_number=1 if body.try_number is UNSET else body.try_number,
        state=S.none.value,
        start_from_trigger=False,
        updated_at=utcnow(),
    )
    conflict = f"task instance {body.dag_id}/{body.run_id}/{body.task_id}[{map_index}] already exists"
    values = {column.key: getattr(row, column.key) for column in m.TaskInstance.__table__.columns}
    await insert_or_conflict(session, m.TaskInstance, values, conflict, field="task_id")
    return to_model(row)


async def list_task_instances(
    session: AsyncSession,
    *,
    dag_id: str | None,
    run_id: str | None,
    state: TaskInstanceStateName | None,
    limit: int,
    offset: int,
) -> TaskInstanceList:
    query = select(m.TaskInstance)
    if dag_id is not None:
        query = query.where(m.TaskInstance.dag_id == dag_id)
    if run_id is not None:
        query = query.where(m.TaskInstance.run_id == run_id)
    if state is not None:
        query = query.where(m.TaskInstance.state == state.value)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    ordered = query.order_by(
        m.TaskInstance.dag_id, m.TaskInstance.run_id, m.TaskInstance.task_id, m.TaskInstance.map_index
    )
    rows = await session.scalars(ordered.limit(limit).offset(offset))
    return TaskInstanceList(task_instances=[to_model(r) for r in rows], total=total or 0)


async def get_task_states(reads: Reads, dag_id: str, run_id: str, task_ids: list[str] | None) -> TaskInstanceStates:
    rows = await reads.fetch_all(GET_TASK_STATES, {"dag_id": dag_id, "run_id": run_id})
    wanted = set(task_ids) if task_ids else None
    return TaskInstanceStates(
        dag_id=dag_id,
        run_id=run_id,
        task_states=[
            TaskInstanceStateItem(task_id=row[0], map_index=row[1], state=S(row[2]))
            for row in rows
            if wanted is None or row[0] in wanted
        ],
    )


async def update_state(
    session: AsyncSession,
    task_instance_id: uuid.UUID,
    update: TaskInstanceStateUpdate,
    *,
    cipher: KwargsCipher = PLAINTEXT,
) -> TaskInstance:
    """Move a task instance to a new state; deferring creates its trigger in the same transaction."""
    row = await session.scalar(select(m.TaskInstance).where(m.TaskInstance.id == task_instance_id).with_for_update())
    if row is None:
        raise _not_found(task_instance_id)
    target = S(str(type(update).__struct_config__.tag))
    from_trigger = isinstance(update, DeferredStateUpdate) and update.start_from_trigger is True
    allowed_from = NOT_RUN if from_trigger else ALLOWED_FROM[target]
    if row.state not in allowed_from:
        allowed = ", ".join(sorted(allowed_from))
        how = "start from a trigger" if from_trigger else f"move to {target}"
        msg = f"task instance {task_instance_id} is {row.state}; it can {how} only from {allowed}"
        raise ConflictError(msg, field="start_from_trigger" if from_trigger else "state")
    now = utcnow()
    if isinstance(update, DeferredStateUpdate):
        trigger = m.Trigger(
            classpath=update.classpath,
            kwargs=cipher.seal(msgspec.json.encode(update.trigger_kwargs).decode()),
            created_date=now,
        )
        session.add(trigger)
        await session.flush()
        row.trigger_id = trigger.id
        row.next_method = update.next_method
        row.next_kwargs = msgspec.json.encode({} if update.next_kwargs is UNSET else update.next_kwargs).decode()
        timeout = update.trigger_timeout
        row.trigger_timeout = None if timeout is UNSET or timeout is None else now + timedelta(seconds=timeout)
        # Set once and kept (a later resume, run or end does not clear it). try_number is left as the engine gave
        # it, as `running` leaves it: Airflow adds one here only because it counts a try when scheduling it.
        row.start_from_trigger = row.start_from_trigger or from_trigger
    elif row.state == S.deferred:
        row.trigger_id = None
        row.trigger_timeout = None
    row.state = target.value
    row.updated_at = now
    await session.flush()
    return to_model(row)
