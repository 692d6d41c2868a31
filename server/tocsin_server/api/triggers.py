"""Triggers: the admin list, and the orchestration endpoints of 2026-11-01."""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request, Router, get, post
from litestar.datastructures import State
from litestar.openapi.spec import OpenAPIType, Schema
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
    constraints,
    problems,
    strict_query,
)
from tocsin_server.generated.models import (
    CleanupResult,
    IdentifierValue,
    TriggerEventBody,
    TriggerEventItem,
    TriggerEventItemResult,
    TriggerEventResult,
    TriggerEventsBody,
    TriggerEventsResult,
    TriggerFailureBody,
    TriggerFailureResult,
    TriggerList,
    TriggerLoad,
    TriggerLoadBody,
    TriggerState,
    Workloads,
    WorkloadsBody,
)
from tocsin_server.services import claims, events, maintenance, triggers
from tocsin_server.services.workloads import build_run_trigger_workloads
from tocsin_server.web.auth import job_id_of
from tocsin_server.web.problems import service_problem
from tocsin_server.web.raw_body import RawBody, json_body, raw_twin

TriggerId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
RawTriggerEventBody = raw_twin(TriggerEventBody)
"""TriggerEventBody with ``payload`` and ``xcoms`` as ``msgspec.Raw``: the server never decodes a payload."""
RawTriggerEventsBody = raw_twin(TriggerEventsBody, {TriggerEventItem: raw_twin(TriggerEventItem)})
XCOMS_ONLY_WITH_TERMINAL_EVENTS: Final = Schema(
    schema_if=Schema(properties={"event_type": Schema(const=events.EventType.resume.value)}),
    then=Schema(properties={"xcoms": False}),  # type: ignore[dict-item]  # JSON Schema's "never valid"
    schema_else=Schema(
        properties={"xcoms": Schema(property_names=Schema(type=OpenAPIType.STRING, **constraints(IdentifierValue)))}
    ),
)
"""The rules events.submit_events enforces, published on TriggerEventBody: a resume event (event_type resume, or
absent: its default) has no xcoms; a terminal one's xcom keys are identifiers. A bulk item breaking them is
refused in its own result, so TriggerEventItem does not carry them."""


def _incoming(trigger_id: int, data: Any) -> events.IncomingEvent:
    """An event from a (raw) TriggerEventBody or TriggerEventItem."""
    return events.IncomingEvent(
        trigger_id=trigger_id,
        event_id=data.event_id,
        payload=data.payload,
        event_type=events.EventType.resume if data.event_type is UNSET else events.EventType(data.event_type),
        xcoms=None if data.xcoms is UNSET else data.xcoms,
    )


def _limits(state: State) -> events.EventLimits:
    settings = state.settings
    return events.EventLimits(
        max_payload_bytes=settings.max_event_payload_bytes,
        allowed_classes=settings.allowed_deserialization_classes,
    )


@get(
    "/api/v1/triggers",
    operation_id="listTriggers",
    tags=["admin"],
    opt=ADMIN,
    guards=[strict_query("state", "job_id", "classpath")],
    responses=problems(*AUTHED),
)
async def list_triggers(
    state: State,
    db_session: DbSession,
    trigger_state: Annotated[TriggerState | None, QueryParameter(name="state")] = None,
    job_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
    classpath: Annotated[str | None, QueryParameter(min_length=1, max_length=1000, pattern=r"^[^\u0000]*$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TriggerList:
    wanted = triggers.TriggerFilter(state=trigger_state, job_id=job_id, classpath=classpath)
    threshold = state.settings.liveness_threshold_s
    return await triggers.list_triggers(
        db_session, limit=limit, offset=offset, liveness_threshold_s=threshold, wanted=wanted
    )


@post(
    "/execution/triggers/load",
    operation_id="loadTriggers",
    tags=["triggerer"],
    opt=JOB,
    status_code=200,
    dto=json_body(TriggerLoadBody),
    return_dto=None,
    responses=problems(*WITH_BODY, 409),
)
async def load_triggers(
    request: Request[Any, Any, Any], state: State, db_session: DbSession, data: JSONBody[TriggerLoadBody]
) -> TriggerLoad:
    settings = state.settings
    held = await claims.load(
        db_session,
        job_id_of(request.scope),
        data.known_version or None,
        max_claims_per_call=settings.max_claims_per_call,
        liveness_threshold_s=settings.liveness_threshold_s,
    )
    return TriggerLoad(
        version=held.version, full=held.full, trigger_ids=held.trigger_ids, added=held.added, removed=held.removed
    )


@post(
    "/execution/triggers/workloads",
    operation_id="getTriggerWorkloads",
    tags=["triggerer"],
    opt=JOB,
    status_code=200,
    dto=json_body(WorkloadsBody),
    return_dto=None,
    responses=problems(*WITH_BODY),
)
async def get_trigger_workloads(
    request: Request[Any, Any, Any], state: State, db_session: DbSession, data: JSONBody[WorkloadsBody]
) -> Workloads:
    authority, ttl = state.authority, state.settings.ti_token_ttl_s
    built = await build_run_trigger_workloads(
        db_session,
        data.trigger_ids,
        # ti tokens also name their dag run: they read XComs of that run only (DESIGN.md section 4)
        mint_token=lambda ti: authority.issue(f"ti:{ti.id}", [f"ti:{ti.id}", f"run:{ti.dag_id}/{ti.run_id}"], ttl),
        holder=job_id_of(request.scope),
        cipher=state.kwargs_cipher,
    )
    return Workloads(workloads=built)


@post(
    "/execution/triggers/{trigger_id:int}/event",
    operation_id="submitTriggerEvent",
    tags=["triggerer"],
    opt=JOB,
    status_code=200,
    dto=RawBody.of(TriggerEventBody, RawTriggerEventBody, XCOMS_ONLY_WITH_TERMINAL_EVENTS),
    return_dto=None,
    responses=problems(*WITH_BODY, 404, 409),
)
async def submit_trigger_event(
    request: Request[Any, Any, Any], state: State, db_session: DbSession, trigger_id: TriggerId, data: JSONBody[Any]
) -> TriggerEventResult:
    incoming = _incoming(trigger_id, data)
    [outcome] = await events.submit_events(db_session, job_id_of(request.scope), [incoming], _limits(state))
    if outcome.error is not None:
        raise outcome.error
    return TriggerEventResult(
        trigger_id=trigger_id,
        event_id=outcome.event_id,
        duplicate=outcome.duplicate,
        task_instances_resumed=outcome.task_instances_resumed,
    )


@post(
    "/execution/triggers/events",
    operation_id="submitTriggerEvents",
    tags=["triggerer"],
    opt=JOB,
    status_code=200,
    dto=RawBody.of(TriggerEventsBody, RawTriggerEventsBody),
    return_dto=None,
    responses=problems(*WITH_BODY),
)
async def submit_trigger_events(
    request: Request[Any, Any, Any], state: State, db_session: DbSession, data: JSONBody[Any]
) -> TriggerEventsResult:
    incoming = [_incoming(item.trigger_id, item) for item in data.events]
    outcomes = await events.submit_events(db_session, job_id_of(request.scope), incoming, _limits(state))
    results = []
    for outcome in outcomes:
        status, problem = (
            (200, None) if outcome.error is None else service_problem(outcome.error, instance=request.url.path)
        )
        results.append(
            TriggerEventItemResult(
                trigger_id=outcome.trigger_id,
                event_id=outcome.event_id,
                status=status,
                duplicate=outcome.duplicate,
                task_instances_resumed=outcome.task_instances_resumed,
                problem=problem,
            )
        )
    applied = sum(1 for r in results if r.status == 200)
    return TriggerEventsResult(results=results, applied=applied, failed=len(results) - applied)


@post(
    "/execution/triggers/{trigger_id:int}/failure",
    operation_id="submitTriggerFailure",
    tags=["triggerer"],
    opt=JOB,
    status_code=200,
    dto=json_body(TriggerFailureBody),
    return_dto=None,
    responses=problems(*WITH_BODY, 404, 409),
)
async def submit_trigger_failure(
    request: Request[Any, Any, Any], db_session: DbSession, trigger_id: TriggerId, data: JSONBody[TriggerFailureBody]
) -> TriggerFailureResult:
    traceback = [] if data.traceback is UNSET else data.traceback
    failed = await events.submit_failure(db_session, job_id_of(request.scope), trigger_id, data.error, traceback)
    return TriggerFailureResult(trigger_id=trigger_id, task_instances_failed=failed)


@post(
    "/execution/triggers/cleanup",
    operation_id="cleanupTriggers",
    tags=["triggerer"],
    opt=JOB,
    status_code=200,
    responses=problems(*AUTHED),
)
async def cleanup_triggers(state: State, db_session: DbSession) -> CleanupResult:
    ran, deleted = await maintenance.cleanup(db_session, interval_s=state.settings.cleanup_interval_s)
    return CleanupResult(deleted=deleted, ran=ran)


router = Router(
    "/",
    route_handlers=[
        list_triggers,
        load_triggers,
        get_trigger_workloads,
        submit_trigger_event,
        submit_trigger_events,
        submit_trigger_failure,
        cleanup_triggers,
    ],
)
