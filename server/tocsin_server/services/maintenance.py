"""Server-wide duties: deleting unused triggers, failing timed-out deferrals, reaping dead jobs.

Each duty runs at most once per interval across every server replica: the replica whose conditional claim
of the duty's row lands runs it; the others (and every other caller of the cleanup endpoint) skip at once.
Lock order, shared with every writer: job rows, then trigger rows, then task-instance rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from tocsin_server import metrics
from tocsin_server.db import models as m
from tocsin_server.generated.models import TaskInstanceStateName
from tocsin_server.services import changes, jobs, retention
from tocsin_server.services._deferral import FAIL_METHOD, fail_kwargs
from tocsin_server.services._time import utcnow
from tocsin_server.services.claims import record_changes
from tocsin_server.services.workloads import chunks

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tocsin_server.config import Settings

_log = logging.getLogger("tocsin.server.maintenance")
CLEANUP: Final = "cleanup"
TIMEOUTS: Final = "timeouts"
RETENTION: Final = "retention"
TIMEOUT_ERROR: Final = "trigger timeout"
_SWEEP_BATCH: Final = 1000


async def claim_duty(session: AsyncSession, name: str, interval_s: float) -> bool:
    """True when this caller should run ``name`` now: nobody is running it and it last ran ``interval_s`` ago."""
    won = await _claim_duty(session, name, interval_s)
    if won:
        metrics.count_on_commit(session, metrics.DUTY_RUNS.labels(name))
    return won


async def _claim_duty(session: AsyncSession, name: str, interval_s: float) -> bool:
    now = utcnow()
    row = await session.scalar(select(m.ServerDuty).where(m.ServerDuty.name == name).with_for_update(skip_locked=True))
    if row is None:
        if await session.scalar(select(m.ServerDuty.name).where(m.ServerDuty.name == name)) is not None:
            return False  # another replica holds it right now
        try:
            async with session.begin_nested():
                await session.execute(insert(m.ServerDuty).values(name=name, last_run=now))
        except IntegrityError:
            return False  # another replica created it first
        return True
    if row.last_run > now - timedelta(seconds=interval_s):
        return False
    row.last_run = now
    return True


async def cleanup(session: AsyncSession, *, interval_s: float) -> tuple[bool, int]:
    """Delete triggers no deferred task instance and no asset watcher uses; returns (ran, deleted)."""
    if not await claim_duty(session, CLEANUP, interval_s):
        return False, 0
    deferred_on = exists().where(
        m.TaskInstance.trigger_id == m.Trigger.id, m.TaskInstance.state == TaskInstanceStateName.deferred.value
    )
    watched = exists().where(m.AssetWatcher.trigger_id == m.Trigger.id)
    unused = select(m.Trigger.id, m.Trigger.triggerer_id).where(~deferred_on, ~watched)
    candidates = (await session.execute(unused)).tuples().all()
    if not candidates:
        return True, 0
    # Lock the holders first (lock order: jobs, then triggers), then the triggers, skipping any in use now.
    holders = sorted({holder for _, holder in candidates if holder is not None})
    for batch in chunks(holders):
        await session.execute(select(m.Job.id).where(m.Job.id.in_(batch)).order_by(m.Job.id).with_for_update())
    deleted: list[tuple[int, int | None]] = []
    for batch in chunks([trigger_id for trigger_id, _ in candidates]):
        locked = list(
            await session.scalars(
                select(m.Trigger.id)
                .where(m.Trigger.id.in_(batch), ~deferred_on, ~watched)
                .order_by(m.Trigger.id)
                .with_for_update(skip_locked=True)
            )
        )
        if locked:
            rows = await session.execute(
                delete(m.Trigger).where(m.Trigger.id.in_(locked)).returning(m.Trigger.id, m.Trigger.triggerer_id)
            )
            deleted.extend(rows.tuples().all())
    removed_from: dict[int, list[int]] = {}
    for trigger_id, holder in deleted:
        if holder is not None:
            removed_from.setdefault(holder, []).append(trigger_id)
    for job_id, trigger_ids in sorted(removed_from.items()):
        job = await session.get(m.Job, job_id)
        if job is None or job.state != jobs.RUNNING:
            continue
        job.assignment_version += 1
        job.held_count = max(job.held_count - len(trigger_ids), 0)
        await record_changes(session, job_id, job.assignment_version, trigger_ids, added=False)
    return True, len(deleted)


DEFERRED: Final = TaskInstanceStateName.deferred.value
SCHEDULED: Final = TaskInstanceStateName.scheduled.value
# What the change log records of each task instance a bulk UPDATE changed (the ORM sees no objects there).
_CHANGE_KEY: Final = (
    m.TaskInstance.id,
    m.TaskInstance.dag_id,
    m.TaskInstance.run_id,
    m.TaskInstance.task_id,
    m.TaskInstance.map_index,
    m.TaskInstance.try_number,
)


async def fail_timed_out(session: AsyncSession) -> int:
    """Schedule deferred task instances whose trigger_timeout passed with ``__fail__`` ("trigger timeout")."""
    now = utcnow()
    total = 0
    while True:
        ids = list(
            await session.scalars(
                select(m.TaskInstance.id)
                .where(
                    m.TaskInstance.state == TaskInstanceStateName.deferred.value, m.TaskInstance.trigger_timeout < now
                )
                .order_by(m.TaskInstance.id)
                .limit(_SWEEP_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return total
        result = await session.execute(
            update(m.TaskInstance)
            .where(m.TaskInstance.id.in_(ids), m.TaskInstance.state == TaskInstanceStateName.deferred.value)
            .values(
                state=TaskInstanceStateName.scheduled.value,
                next_method=FAIL_METHOD,
                next_kwargs=fail_kwargs(TIMEOUT_ERROR),
                trigger_id=None,
                trigger_timeout=None,
                updated_at=now,
            )
            .returning(*_CHANGE_KEY)
            .execution_options(synchronize_session=False)
        )
        timed_out = result.all()
        changes.record(session, timed_out, previous=DEFERRED, state=SCHEDULED, reason=changes.Reason.timed_out)
        metrics.count_on_commit(session, metrics.TIMEOUTS, len(timed_out))
        total += len(timed_out)
        if len(ids) < _SWEEP_BATCH:
            return total


async def run_periodic_duties(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """One round: timeouts and dead jobs (once per interval server-wide), then cleanup (its own interval)."""
    async with sessionmaker() as session, session.begin():
        if await claim_duty(session, TIMEOUTS, settings.timeout_check_interval_s):
            failed = await fail_timed_out(session)
            reaped = await jobs.reap_dead(session, liveness_threshold_s=settings.liveness_threshold_s)
            if failed or reaped:
                _log.info("failed %d timed-out deferrals, reaped dead jobs %s", failed, reaped)
    async with sessionmaker() as session, session.begin():
        await cleanup(session, interval_s=settings.cleanup_interval_s)


async def run_retention(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> retention.Swept | None:
    """Sweep old rows when this replica wins the duty for this interval; None when it does not."""
    async with sessionmaker() as session, session.begin():
        if not await claim_duty(session, RETENTION, settings.retention_interval_s):
            return None
    swept = await retention.sweep(sessionmaker, settings)
    if swept.total:
        _log.info("retention deleted %d rows in %d batches: %s", swept.total, swept.batches, swept)
    return swept


async def _repeat(
    round_: Callable[[], Awaitable[object]],
    period_s: float,
    what: str,
    explained: Callable[[Exception], Awaitable[bool]] | None,
) -> None:
    """Run ``round_`` every ``period_s`` forever; a failed round is logged (unless ``explained`` already reported
    it: the database is away, logged once) and retried, never fatal to the server."""
    while True:
        try:
            await round_()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed round is logged and retried, never fatal to the server
            if explained is None or not await explained(exc):
                _log.exception("%s failed; trying again next round", what)
        await asyncio.sleep(period_s)


async def periodic_loop(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    explained: Callable[[Exception], Awaitable[bool]] | None = None,
) -> None:
    """Runs inside every server process; safe with any number of replicas (see ``claim_duty``).
    ``explained(exc)`` is True when a failure is already reported (the database is away: logged once)."""
    period = min(settings.timeout_check_interval_s, settings.cleanup_interval_s)
    # Retention has its own loop: a long sweep (a backlog of millions of rows) never delays timeouts or reaping.
    sweeper = (
        asyncio.create_task(
            _repeat(
                lambda: run_retention(sessionmaker, settings),
                min(settings.retention_interval_s, 60.0),
                "the retention duty",
                explained,
            )
        )
        if settings.retention
        else None
    )
    try:
        await _repeat(lambda: run_periodic_duties(sessionmaker, settings), period, "a periodic duty", explained)
    finally:
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
