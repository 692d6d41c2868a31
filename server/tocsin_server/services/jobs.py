"""Triggerer jobs: registration, heartbeats, completion, dead-job reaping and the admin view.

The lease is the server's: a job is alive while it is ``running`` and has heartbeated within the liveness
threshold. Every transition is one conditional UPDATE, so a heartbeat racing a reaper (or a completion) is
decided by the database: whichever commits first wins, and the other's WHERE no longer matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, func, not_, select, update

from tocsin_server import metrics
from tocsin_server.db import models as m
from tocsin_server.errors import ConflictError, ForbiddenError, NotFoundError
from tocsin_server.generated.models import Job, JobList, JobRegistrationBody, JobStateName, JobType
from tocsin_server.services._time import utcnow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import ColumnElement
    from sqlalchemy.ext.asyncio import AsyncSession

RUNNING = JobStateName.running.value


@dataclass(frozen=True, slots=True)
class Lease:
    """What a job needs to know to keep its lease."""

    job_id: int
    capacity: int
    latest_heartbeat: datetime
    heartbeat_deadline: datetime


def is_alive(job: m.Job, *, now: datetime, liveness_threshold_s: float) -> bool:
    return job.state == JobStateName.running and job.latest_heartbeat > now - timedelta(seconds=liveness_threshold_s)


def check_owner(path_job_id: int, token_job_id: int) -> None:
    """A job token acts for its own job only."""
    if path_job_id != token_job_id:
        msg = f"this token belongs to job {token_job_id}, not job {path_job_id}"
        raise ForbiddenError(msg, field="job_id")


def not_found(job_id: int) -> NotFoundError:
    return NotFoundError(f"job {job_id} does not exist", field="job_id")


def not_running(job_id: int, state: str) -> ConflictError:
    return ConflictError(f"job {job_id} is {state}, not running: stop its triggers and register again", field="job_id")


async def register(
    session: AsyncSession, body: JobRegistrationBody, *, max_capacity: int, liveness_threshold_s: float
) -> Lease:
    now = utcnow()
    job = m.Job(
        job_type=JobType.triggerer.value,
        state=RUNNING,
        hostname=body.hostname,
        pid=body.pid,
        capacity=min(body.capacity, max_capacity),
        start_date=now,
        latest_heartbeat=now,
        assignment_version=0,
        held_count=0,
        assignment_floor=0,
        log_lines_dropped=0,
    )
    session.add(job)
    await session.flush()
    return Lease(job.id, job.capacity, now, now + timedelta(seconds=liveness_threshold_s))


async def heartbeat(session: AsyncSession, job_id: int, *, liveness_threshold_s: float) -> Lease:
    """One conditional UPDATE: it only lands while the job is running (a reaped or completed job gets 409)."""
    now = utcnow()
    result = await session.execute(
        update(m.Job)
        .where(m.Job.id == job_id, m.Job.state == RUNNING)
        .values(latest_heartbeat=now)
        .returning(m.Job.capacity)
    )
    capacity = result.scalar_one_or_none()
    if capacity is None:
        state = await session.scalar(select(m.Job.state).where(m.Job.id == job_id))
        if state is None:
            raise not_found(job_id)
        raise not_running(job_id, state)
    return Lease(job_id, capacity, now, now + timedelta(seconds=liveness_threshold_s))


async def _release(session: AsyncSession, job_ids: Sequence[int]) -> None:
    """Hand the triggers of ended jobs back (claimable at once) and forget their assignment logs."""
    await session.execute(update(m.Trigger).where(m.Trigger.triggerer_id.in_(job_ids)).values(triggerer_id=None))
    await session.execute(delete(m.TriggerAssignment).where(m.TriggerAssignment.job_id.in_(job_ids)))


async def complete(session: AsyncSession, job_id: int) -> None:
    """End the job and hand its triggers back. Completing an ended job again changes nothing."""
    now = utcnow()
    ended = await session.execute(
        update(m.Job)
        .where(m.Job.id == job_id, m.Job.state == RUNNING)
        .values(state=JobStateName.success.value, end_date=now, held_count=0)
        .returning(m.Job.id)
    )
    if ended.scalar_one_or_none() is None:
        if await session.scalar(select(m.Job.id).where(m.Job.id == job_id)) is None:
            raise not_found(job_id)
        return
    await _release(session, [job_id])


async def reap_dead(session: AsyncSession, *, liveness_threshold_s: float) -> list[int]:
    """Mark running jobs whose lease ran out as failed and release their triggers; returns their ids.

    The overdue rows are locked before they change, so a heartbeat that committed first keeps its job alive
    (the row no longer matches), and one that comes after finds the job failed (409): the heartbeat's own
    conditional UPDATE decides. Cheap when nothing is dead: one probe of the (state, latest_heartbeat) index.
    """
    cutoff = utcnow() - timedelta(seconds=liveness_threshold_s)
    # SKIP LOCKED: a job row another transaction holds (its own load, a heartbeat, another reaper) is left to it,
    # so reapers never wait on each other and never deadlock; the rows taken are locked, so still overdue.
    job_ids = list(
        await session.scalars(
            select(m.Job.id)
            .where(m.Job.state == RUNNING, m.Job.latest_heartbeat < cutoff)
            .order_by(m.Job.id)
            .with_for_update(skip_locked=True)
        )
    )
    if job_ids:
        await session.execute(
            update(m.Job)
            .where(m.Job.id.in_(job_ids))
            .values(state=JobStateName.failed.value, end_date=utcnow(), held_count=0)
        )
        await _release(session, job_ids)
        metrics.count_on_commit(session, metrics.JOBS_REAPED, len(job_ids))
    return job_ids


def alive_clause(*, now: datetime, liveness_threshold_s: float) -> ColumnElement[bool]:
    """``is_alive`` as SQL: running, and a heartbeat within the threshold."""
    return and_(m.Job.state == RUNNING, m.Job.latest_heartbeat > now - timedelta(seconds=liveness_threshold_s))


async def list_jobs(
    session: AsyncSession,
    *,
    liveness_threshold_s: float,
    limit: int,
    offset: int,
    state: JobStateName | None = None,
    alive: bool | None = None,
) -> JobList:
    """A page of jobs, newest first; ``state`` and ``alive`` filter (None: every job)."""
    now = utcnow()
    conditions: list[ColumnElement[bool]] = []
    if state is not None:
        conditions.append(m.Job.state == state.value)
    if alive is not None:
        live = alive_clause(now=now, liveness_threshold_s=liveness_threshold_s)
        conditions.append(live if alive else not_(live))
    held = select(func.count(m.Trigger.id)).where(m.Trigger.triggerer_id == m.Job.id).correlate(m.Job).scalar_subquery()
    total = await session.scalar(select(func.count()).select_from(m.Job).where(*conditions))
    rows = await session.execute(
        select(m.Job, held).where(*conditions).order_by(m.Job.id.desc()).limit(limit).offset(offset)
    )
    return JobList(
        jobs=[
            Job(
                id=job.id,
                job_type=JobType(job.job_type),
                state=JobStateName(job.state),
                hostname=job.hostname,
                pid=job.pid,
                capacity=job.capacity,
                start_date=job.start_date,
                end_date=job.end_date,
                latest_heartbeat=job.latest_heartbeat,
                heartbeat_age_s=max(0.0, (now - job.latest_heartbeat).total_seconds()),
                alive=is_alive(job, now=now, liveness_threshold_s=liveness_threshold_s),
                trigger_count=count,
            )
            for job, count in rows.tuples()
        ],
        total=total or 0,
    )
