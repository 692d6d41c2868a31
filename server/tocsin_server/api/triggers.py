"""Triggers: the admin list, and the orchestration endpoints of 2026-11-01."""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.params import JSONBody, PathParameter

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    MAX_ID,
    V2026_11_01,
    WITH_BODY,
    DbSession,
    Limit,
    Offset,
    problems,
)
from tocsin_server.api._pending import not_implemented
from tocsin_server.generated.models import (
    CleanupResult,
    TriggerEventBody,
    TriggerEventResult,
    TriggerFailureBody,
    TriggerFailureResult,
    TriggerList,
    TriggerLoad,
    TriggerLoadBody,
    Workloads,
    WorkloadsBody,
)
from tocsin_server.services import triggers

TriggerId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]


@get("/api/v1/triggers", operation_id="listTriggers", tags=["admin"], guards=[ADMIN], responses=problems(*AUTHED))
async def list_triggers(db_session: DbSession, limit: Limit = 100, offset: Offset = 0) -> TriggerList:
    return await triggers.list_triggers(db_session, limit=limit, offset=offset)


@post(
    "/execution/triggers/load",
    operation_id="loadTriggers",
    tags=["triggerer"],
    opt=V2026_11_01,
    status_code=200,
    responses=problems(*WITH_BODY, 409, 501),
)
async def load_triggers(data: JSONBody[TriggerLoadBody]) -> TriggerLoad:
    raise not_implemented("loadTriggers")


@post(
    "/execution/triggers/workloads",
    operation_id="getTriggerWorkloads",
    tags=["triggerer"],
    opt=V2026_11_01,
    status_code=200,
    responses=problems(*WITH_BODY, 501),
)
async def get_trigger_workloads(data: JSONBody[WorkloadsBody]) -> Workloads:
    raise not_implemented("getTriggerWorkloads")


@post(
    "/execution/triggers/{trigger_id:int}/event",
    operation_id="submitTriggerEvent",
    tags=["triggerer"],
    opt=V2026_11_01,
    status_code=200,
    responses=problems(*WITH_BODY, 404, 409, 501),
)
async def submit_trigger_event(trigger_id: TriggerId, data: JSONBody[TriggerEventBody]) -> TriggerEventResult:
    raise not_implemented("submitTriggerEvent")


@post(
    "/execution/triggers/{trigger_id:int}/failure",
    operation_id="submitTriggerFailure",
    tags=["triggerer"],
    opt=V2026_11_01,
    status_code=200,
    responses=problems(*WITH_BODY, 404, 409, 501),
)
async def submit_trigger_failure(trigger_id: TriggerId, data: JSONBody[TriggerFailureBody]) -> TriggerFailureResult:
    raise not_implemented("submitTriggerFailure")


@post(
    "/execution/triggers/cleanup",
    operation_id="cleanupTriggers",
    tags=["triggerer"],
    opt=V2026_11_01,
    status_code=200,
    responses=problems(*AUTHED, 501),
)
async def cleanup_triggers() -> CleanupResult:
    raise not_implemented("cleanupTriggers")
