"""Triggerer jobs: the admin list, and the orchestration endpoints of 2026-11-01."""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    MAX_ID,
    TRIGGERER,
    V2026_11_01,
    WITH_BODY,
    DbSession,
    Limit,
    Offset,
    problems,
)
from tocsin_server.api._pending import not_implemented
from tocsin_server.generated.models import Heartbeat, JobList, JobRegistration, JobRegistrationBody
from tocsin_server.services import jobs

JobId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]


@get("/api/v1/jobs", operation_id="listJobs", tags=["admin"], guards=[ADMIN], responses=problems(*AUTHED))
async def list_jobs(state: State, db_session: DbSession, limit: Limit = 100, offset: Offset = 0) -> JobList:
    threshold = state.settings.liveness_threshold_s
    return await jobs.list_jobs(db_session, liveness_threshold_s=threshold, limit=limit, offset=offset)


@post(
    "/execution/jobs",
    operation_id="registerJob",
    tags=["triggerer"],
    guards=[TRIGGERER],
    opt=V2026_11_01,
    status_code=201,
    responses=problems(*WITH_BODY, 501),
)
async def register_job(data: JSONBody[JobRegistrationBody]) -> JobRegistration:
    raise not_implemented("registerJob")


@post(
    "/execution/jobs/{job_id:int}/heartbeat",
    operation_id="heartbeatJob",
    tags=["triggerer"],
    opt=V2026_11_01,
    status_code=200,
    responses=problems(*AUTHED, 404, 409, 501),
)
async def heartbeat_job(job_id: JobId) -> Heartbeat:
    raise not_implemented("heartbeatJob")


@post(
    "/execution/jobs/{job_id:int}/complete",
    operation_id="completeJob",
    tags=["triggerer"],
    opt=V2026_11_01,
    status_code=204,
    responses=problems(*AUTHED, 404, 501),
)
async def complete_job(job_id: JobId) -> None:
    raise not_implemented("completeJob")
