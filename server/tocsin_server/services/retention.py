"""Retention: deleting old trigger events, asset events, trigger logs, assignment rows and task-instance changes,
in small batches.

Each batch is one short transaction that deletes at most ``batch_size`` rows chosen by a ``LIMIT`` subquery;
on PostgreSQL the subquery locks with ``FOR UPDATE SKIP LOCKED``, so two replicas sweeping at once (or a
request touching a row) never wait on each other and never delete a row twice. The loop yields to the event
loop between batches, so the runtime API is served while a backlog of a million rows goes.

What is never deleted, whatever its age:
- a trigger event (the record that makes event submission idempotent) whose trigger still has a deferred
  task instance: a redelivered duplicate must still find it. Once nothing is deferred on the trigger (it is
  gone, or its task resumed), a duplicate has nothing to resume; only an asset watcher's trigger could apply
  one again, which is why the events window must exceed any redelivery (the README says so).
- an assignment row of a running job: the ``load`` delta form is answered from them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import ColumnElement, delete, exists, func, inspect, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tocsin_server.db import models as m
from tocsin_server.generated.models import TaskInstanceStateName
from tocsin_server.services import jobs
from tocsin_server.services._time import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from sqlalchemy.sql import Executable
    from sqlalchemy.sql.elements import ColumnClause

    from tocsin_server.config import Settings

_NO_VERSION: Final = 2**63 - 1
"""Larger than any version: with no young change, every change is old."""
HORIZON_ROW: Final = 1
"""The one row of ``task_instance_change_horizon``."""
REST_FACTOR: Final = 3.0
"""After each full batch the sweep rests this many times as long as the batch took (measured, see
docs/benchmarks.md#retention: deleting flat out raised the runtime GET's p99 threefold on a small machine)."""


@dataclass
class Swept:
    """Rows deleted by one retention run, per kind, and the batches (transactions) it took."""

    trigger_events: int = 0
    asset_events: int = 0
    trigger_logs: int = 0
    assignments: int = 0
    changes: int = 0
    batches: int = 0

    @property
    def total(self) -> int:
        return self.trigger_events + self.asset_events + self.trigger_logs + self.assignments + self.changes


def _conditions(settings: Settings) -> dict[str, tuple[type[m.Base], ColumnElement[bool]]]:
    """Per kind of row: its model and what makes a row of it deletable now."""
    now = utcnow()
    deferred_on = exists().where(
        m.TaskInstance.trigger_id == m.TriggerEvent.trigger_id,
        m.TaskInstance.state == TaskInstanceStateName.deferred.value,
    )
    job_running = exists().where(m.Job.id == m.TriggerAssignment.job_id, m.Job.state == jobs.RUNNING)
    job_recent = exists().where(
        m.Job.id == m.TriggerAssignment.job_id,
        m.Job.latest_heartbeat >= now - timedelta(seconds=settings.retention_assignments_s),
    )
    return {
        "trigger_events": (
            m.TriggerEvent,
            (m.TriggerEvent.received_at < now - timedelta(seconds=settings.retention_events_s)) & ~deferred_on,
        ),
        "asset_events": (
            m.AssetEvent,
            m.AssetEvent.created_at < now - timedelta(seconds=settings.retention_asset_events_s),
        ),
        "trigger_logs": (
            m.TriggerLog,
            m.TriggerLog.timestamp < now - timedelta(seconds=settings.retention_logs_s),
        ),
        # No time column: a row outlives its job's last heartbeat by the window, and never a running job.
        "assignments": (m.TriggerAssignment, ~job_running & ~job_recent),
        # A prefix of versions, never a row behind a younger one: ``changed_at`` is taken before the commit that
        # assigns the version, so it is not quite in version order, and a watcher resuming after the newest
        # version deleted (the horizon) must find every later one still there.
        "changes": (m.TaskInstanceChange, m.TaskInstanceChange.version < _first_young_change(now, settings)),
    }


def _first_young_change(now: datetime, settings: Settings) -> ColumnElement[int]:
    """The oldest version still inside the changes window (every version when none is)."""
    young = m.TaskInstanceChange.changed_at >= now - timedelta(seconds=settings.retention_changes_s)
    oldest_young = select(func.min(m.TaskInstanceChange.version)).where(young).scalar_subquery()
    return func.coalesce(oldest_young, _NO_VERSION)


async def _delete_batch(session: AsyncSession, model: type[m.Base], where: ColumnElement[bool], batch_size: int) -> int:
    """Delete at most ``batch_size`` rows matching ``where``; returns how many went."""
    if session.bind.dialect.name == "postgresql":
        keys = inspect(model).primary_key
        chosen = select(*keys).where(where).limit(batch_size).with_for_update(skip_locked=True)
        statement = delete(model).where(tuple_(*keys).in_(chosen))
    else:  # SQLite: one writer at a time already; rowid picks the rows of any primary key
        rowid: ColumnClause[Any] = literal_column("rowid")
        statement = delete(model).where(rowid.in_(select(rowid).select_from(model).where(where).limit(batch_size)))
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _delete_changes(session: AsyncSession, where: ColumnElement[bool], batch_size: int) -> int:
    """Delete the oldest changes matching ``where`` and raise the horizon to the newest version deleted, in the
    same transaction: the watch feed answers 410 to a version older than it (services/change_feed.py)."""
    version = m.TaskInstanceChange.version
    chosen = select(version).where(where).order_by(version).limit(batch_size)
    if session.bind.dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    versions = list(await session.scalars(chosen))
    if not versions:
        return 0
    await session.execute(
        delete(m.TaskInstanceChange).where(version.in_(versions)).execution_options(synchronize_session=False)
    )
    await raise_horizon(session, max(versions))
    return len(versions)


async def raise_horizon(session: AsyncSession, deleted: int) -> None:
    """The horizon is now at least ``deleted`` (two replicas sweeping at once only ever raise it)."""
    table = m.TaskInstanceChangeHorizon
    statement: Executable
    if session.bind.dialect.name == "postgresql":
        upsert = pg_insert(table).values(id=HORIZON_ROW, version=deleted)
        statement = upsert.on_conflict_do_update(
            index_elements=[table.id], set_={"version": func.greatest(table.version, upsert.excluded.version)}
        )
    else:
        upsert_sqlite = sqlite_insert(table).values(id=HORIZON_ROW, version=deleted)
        statement = upsert_sqlite.on_conflict_do_update(
            index_elements=[table.id], set_={"version": func.max(table.version, upsert_sqlite.excluded.version)}
        )
    await session.execute(statement)


async def sweep(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Swept:
    """Delete every deletable row, one short transaction per batch; safe to run on several replicas at once."""
    swept = Swept()
    batch_size = settings.retention_batch_size
    for kind, (model, where) in _conditions(settings).items():
        while True:
            started = time.monotonic()
            async with sessionmaker() as session, session.begin():
                if model is m.TaskInstanceChange:
                    deleted = await _delete_changes(session, where, batch_size)
                else:
                    deleted = await _delete_batch(session, model, where, batch_size)
            swept.batches += 1
            setattr(swept, kind, getattr(swept, kind) + deleted)
            if deleted < batch_size:
                break
            # Rest between batches: the sweep takes at most 1 / (1 + REST_FACTOR) of one connection's time, so a
            # backlog drains at a steady pace without taking the database's CPU from the runtime API.
            await asyncio.sleep((time.monotonic() - started) * REST_FACTOR)
    return swept
