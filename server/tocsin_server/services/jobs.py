"""Triggerer jobs: the admin view (registration and heartbeats come with the orchestration endpoints)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from tocsin_server.db import models as m
from tocsin_server.generated.models import Job, JobList, JobStateName, JobType
from tocsin_server.services._time import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def is_alive(job: m.Job, *, now: datetime, liveness_threshold_s: float) -> bool:
    return job.state == JobStateName.running and job.latest_heartbeat > now - timedelta(seconds=liveness_threshold_s)


async def list_jobs(session: AsyncSession, *, liveness_threshold_s: float, limit: int, offset: int) -> JobList:
    held = select(func.count(m.Trigger.id)).where(m.Trigger.triggerer_id == m.Job.id).correlate(m.Job).scalar_subquery()
    total = await session.scalar(select(func.count()).select_from(m.Job))
    rows = await session.execute(select(m.Job, held).order_by(m.Job.id.desc()).limit(limit).offset(offset))
    now = utcnow()
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
                alive=is_alive(job, now=now, liveness_threshold_s=liveness_threshold_s),
                trigger_count=count,
            )
            for job, count in rows.tuples()
        ],
        total=total or 0,
    )
