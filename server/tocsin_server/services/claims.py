"""Claiming triggers (``load``): the held set of a job, as a full answer or as a delta.

Two jobs never hold one trigger: claims pick unassigned rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(concurrent claimers skip each other's rows instead of waiting or double-assigning); SQLite serializes every
write transaction (``BEGIN IMMEDIATE``). A dead job's triggers become unassigned when it is reaped.

Steady state stays cheap however many triggers a job holds: the job row carries its held count and the
version of its held set, unassigned triggers are found through a partial index, and a delta answer reads only
the assignment log entries newer than the version the client knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy import BigInteger, delete, insert, literal, select, true, update

from tocsin_server import metrics
from tocsin_server.db import models as m
from tocsin_server.errors import ConflictError, ForbiddenError
from tocsin_server.services import jobs
from tocsin_server.services._time import utcnow
from tocsin_server.services.jobs import RUNNING

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(slots=True)
class HeldSet:
    version: str
    full: bool
    trigger_ids: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


def format_version(job_id: int, assignment_version: int) -> str:
    return f"{job_id}:{assignment_version}"


def parse_version(raw: str | None, job_id: int) -> int | None:
    """The assignment version the client knows, or None when it names another job or is not ours."""
    if not raw:
        return None
    owner, _, number = raw.partition(":")
    if owner != str(job_id) or not number.isdigit():
        return None
    return int(number)


async def record_changes(
    session: AsyncSession, job_id: int, version: int, trigger_ids: list[int], *, added: bool
) -> None:
    if trigger_ids:
        await session.execute(
            insert(m.TriggerAssignment),
            [{"job_id": job_id, "version": version, "trigger_id": t, "added": added} for t in trigger_ids],
        )


async def _claim(session: AsyncSession, job_id: int, version: int, room: int) -> list[int]:
    """Assign up to ``room`` unassigned triggers to the job and log them as ``version``; returns their ids.

    The oldest unassigned rows, locked as picked (``SKIP LOCKED``: a concurrent claimer takes others), assigned
    by the same statement. On PostgreSQL the log entries are written by that statement too (a data-modifying
    CTE): one round trip, no id list sent back and forth. SQLite has no such CTE and no row locks (its write
    transaction is the lock): the update returns the ids and one insert logs them.
    """
    # Core tables, not the mapped classes: nothing here needs the ORM's bulk-update bookkeeping.
    trigger, log = cast("Table", m.Trigger.__table__), cast("Table", m.TriggerAssignment.__table__)
    pick = (
        select(trigger.c.id)
        .where(trigger.c.triggerer_id.is_(None))
        .order_by(trigger.c.id)
        .limit(room)
        .with_for_update(skip_locked=True)
    )
    assign = update(trigger).where(trigger.c.id.in_(pick.scalar_subquery())).values(triggerer_id=job_id)
    if session.bind.dialect.name == "postgresql":
        assigned = assign.returning(trigger.c.id).cte("assigned")
        logged = (
            insert(log)
            .from_select(
                ["job_id", "version", "trigger_id", "added"],
                select(literal(job_id, BigInteger), literal(version, BigInteger), assigned.c.id, true()),
            )
            .returning(log.c.trigger_id)
        )
        return list(await session.scalars(logged))
    claimed = list(await session.scalars(assign.returning(trigger.c.id)))
    await record_changes(session, job_id, version, claimed, added=True)
    return claimed


async def load(
    session: AsyncSession,
    job_id: int,
    known_version: str | None,
    *,
    max_claims_per_call: int,
    liveness_threshold_s: float,
) -> HeldSet:
    # Reap first (it skips locked rows and never waits), then lock our own row: lock order is jobs, then triggers.
    await jobs.reap_dead(session, liveness_threshold_s=liveness_threshold_s)
    job = await session.scalar(select(m.Job).where(m.Job.id == job_id).with_for_update())
    if job is None:
        msg = f"the token names job {job_id}, which does not exist"
        raise ForbiddenError(msg, field="job_id")
    if job.state != RUNNING:
        raise jobs.not_running(job_id, job.state)
    if job.latest_heartbeat < utcnow() - timedelta(seconds=liveness_threshold_s):
        msg = f"job {job_id} missed its heartbeats past the liveness threshold: its lease ended"
        raise ConflictError(msg, field="job_id")

    before = job.assignment_version
    room = min(job.capacity - job.held_count, max_claims_per_call)
    claimed = await _claim(session, job_id, before + 1, room) if room > 0 else []
    if claimed:
        job.assignment_version += 1
        job.held_count += len(claimed)
        metrics.count_on_commit(session, metrics.TRIGGERS_CLAIMED, len(claimed))

    version = format_version(job_id, job.assignment_version)
    known = parse_version(known_version, job_id)
    if known is None or known < job.assignment_floor or known > job.assignment_version:
        ids = list(
            await session.scalars(select(m.Trigger.id).where(m.Trigger.triggerer_id == job_id).order_by(m.Trigger.id))
        )
        return HeldSet(version=version, full=True, trigger_ids=ids)
    if known > job.assignment_floor:
        # The client applied every change up to `known`: those log entries are never needed again. Those up to
        # the floor are gone already; saying so lets the index scan start at the floor instead of stepping over
        # the dead entries of every earlier delete (a ramp deletes a thousand per call, so that grew as N^2).
        await session.execute(
            delete(m.TriggerAssignment).where(
                m.TriggerAssignment.job_id == job_id,
                m.TriggerAssignment.version > job.assignment_floor,
                m.TriggerAssignment.version <= known,
            )
        )
        job.assignment_floor = known
    if known == before:
        # The client knew every change before this call (we hold the job row: no one else logs for it), so the
        # delta is what this call claimed; a triggerer ramping up asks this on every call, and reading those
        # thousand log entries back would be waste.
        return HeldSet(version=version, full=False, added=claimed)
    changes = await session.execute(
        select(m.TriggerAssignment.trigger_id, m.TriggerAssignment.added)
        .where(m.TriggerAssignment.job_id == job_id, m.TriggerAssignment.version > known)
        .order_by(m.TriggerAssignment.version)
    )
    added: dict[int, None] = {}
    removed: dict[int, None] = {}
    for trigger_id, was_added in changes.tuples():
        if was_added:
            added[trigger_id] = None
        elif trigger_id in added:
            del added[trigger_id]  # came and went since `known`: the client never saw it
        else:
            removed[trigger_id] = None
    return HeldSet(version=version, full=False, added=list(added), removed=list(removed))
