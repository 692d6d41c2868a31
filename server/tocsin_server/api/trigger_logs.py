"""Per-trigger logs (2026-12-01): shipped by triggerers, read by operators after the triggerer is gone."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Router, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import UNSET

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    JOB,
    MAX_ID,
    WITH_BODY,
    DbSession,
    Limit,
    Offset,
    problems,
    strict_query,
)
from tocsin_server.generated.models import TriggerLogBatch, TriggerLogLine, TriggerLogList, TriggerLogResult
from tocsin_server.services import trigger_logs
from tocsin_server.web.auth import job_id_of
from tocsin_server.web.raw_body import RawBody, raw_twin

RawTriggerLogBatch = raw_twin(TriggerLogBatch, {TriggerLogLine: raw_twin(TriggerLogLine)})
"""TriggerLogBatch whose lines keep their ``extra`` fields as raw JSON, stored as received."""


@post(
    "/execution/triggers/logs",
    operation_id="shipTriggerLogs",
    tags=["triggerer"],
    opt=JOB,
    status_code=200,
    dto=RawBody.of(TriggerLogBatch, RawTriggerLogBatch),
    return_dto=None,
    responses=problems(*WITH_BODY, 409),
)
async def ship_trigger_logs(
    request: Request[Any, Any, Any], state: State, db_session: DbSession, data: JSONBody[Any]
) -> TriggerLogResult:
    stored, truncated = await trigger_logs.ship(
        db_session,
        job_id_of(request.scope),
        data.lines,
        0 if data.dropped is UNSET else data.dropped,
        max_line_bytes=state.settings.max_log_line_bytes,
    )
    return TriggerLogResult(stored=stored, truncated=truncated)


@get(
    "/api/v1/task-instances/{task_instance_id:uuid}/logs",
    operation_id="getTaskInstanceLogs",
    tags=["admin"],
    opt=ADMIN,
    guards=[strict_query("try_number", "after")],
    responses=problems(*AUTHED, 404),
)
async def get_task_instance_logs(
    db_session: DbSession,
    task_instance_id: Annotated[UUID, PathParameter()],
    try_number: Annotated[int | None, QueryParameter(ge=0, le=1000)] = None,
    after: Annotated[int | None, QueryParameter(ge=0, le=MAX_ID)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TriggerLogList:
    return await trigger_logs.read(db_session, task_instance_id, try_number, after=after, limit=limit, offset=offset)


router = Router("/", route_handlers=[ship_trigger_logs, get_task_instance_logs])
