"""Triggerer jobs: the admin list, and the orchestration endpoints of 2026-11-01."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    JOB,
    MAX_ID,
    TRIGGERER,
    WITH_BODY,
    DbSession,
    Limit,
    Offset,
    problems,
    strict_query,
)
from tocsin_server.generated.models import Heartbeat, JobList, JobRegistration, JobRegistrationBody, JobStateName
from tocsin_server.services import jobs
from tocsin_server.web.auth import job_id_of
from tocsin_server.web.raw_body import json_body

JobId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]


@get(
    "/api/v1/jobs",
    operation_id="listJobs",
    tags=["admin"],
    opt=ADMIN,
    guards=[strict_query("state", "alive")],
    responses=problems(*AUTHED),
)
async def list_jobs(
    state: State,
    db_session: DbSession,
    job_state: Annotated[JobStateName | None, QueryParameter(name="state")] = None,
    alive: Annotated[bool | None, QueryParameter()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JobList:
    threshold = state.settings.liveness_threshold_s
    return await jobs.list_jobs(
        db_session, liveness_threshold_s=threshold, limit=limit, offset=offset, state=job_state, alive=alive
    )


@post(
    "/execution/jobs",
    operation_id="registerJob",
    tags=["triggerer"],
    opt=TRIGGERER,
    status_code=201,
    dto=json_body(JobRegistrationBody),
    return_dto=None,
    responses=problems(*WITH_BODY),
)
async def register_job(state: State, db_session: DbSession, data: JSONBody[JobRegistrationBody]) -> JobRegistration:
    settings = state.settings
    lease = await jobs.register(
        db_session, data, max_capacity=settings.max_capacity, liveness_threshold_s=settings.liveness_threshold_s
    )
    token = state.authority.issue(f"job:{lease.job_id}", [f"job:{lease.job_id}"], settings.job_token_ttl_s)
    return JobRegistration(
        job_id=lease.job_id,
        token=token,
        capacity=lease.capacity,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        liveness_threshold_s=settings.liveness_threshold_s,
        heartbeat_deadline=lease.heartbeat_deadline,
    )


@post(
    "/execution/jobs/{job_id:int}/heartbeat",
    operation_id="heartbeatJob",
    tags=["triggerer"],
    opt=JOB,
    status_code=200,
    responses=problems(*AUTHED, 404, 409),
)
async def heartbeat_job(
    request: Request[Any, Any, Any], state: State, db_session: DbSession, job_id: JobId
) -> Heartbeat:
    jobs.check_owner(job_id, job_id_of(request.scope))
    lease = await jobs.heartbeat(db_session, job_id, liveness_threshold_s=state.settings.liveness_threshold_s)
    return Heartbeat(
        job_id=job_id, latest_heartbeat=lease.latest_heartbeat, heartbeat_deadline=lease.heartbeat_deadline
    )


@post(
    "/execution/jobs/{job_id:int}/complete",
    operation_id="completeJob",
    tags=["triggerer"],
    opt=JOB,
    status_code=204,
    responses=problems(*AUTHED, 404),
)
async def complete_job(request: Request[Any, Any, Any], db_session: DbSession, job_id: JobId) -> None:
    jobs.check_owner(job_id, job_id_of(request.scope))
    await jobs.complete(db_session, job_id)


router = Router("/", route_handlers=[list_jobs, register_job, heartbeat_job, complete_job])
