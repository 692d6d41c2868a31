"""Dag runs: the runtime state read and the admin surface."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.datastructures import State
from litestar.params import JSONBody

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    RUNTIME_READ,
    WITH_BODY,
    DagId,
    DagIdFilter,
    DbSession,
    Limit,
    Offset,
    RunId,
    problems,
)
from tocsin_server.generated.models import DagRun, DagRunBody, DagRunList, DagRunState
from tocsin_server.services import dag_runs
from tocsin_server.web.raw_body import json_body


@get(
    "/execution/dag-runs/{dag_id:str}/{run_id:str}/state",
    operation_id="getDagRunState",
    tags=["runtime"],
    opt=RUNTIME_READ,
    responses=problems(*AUTHED, 404),
)
async def get_dag_run_state(state: State, dag_id: DagId, run_id: RunId) -> DagRunState:
    return await dag_runs.get_dag_run_state(state.reads, dag_id, run_id)


@get("/api/v1/dag-runs", operation_id="listDagRuns", tags=["admin"], opt=ADMIN, responses=problems(*AUTHED))
async def list_dag_runs(
    db_session: DbSession,
    dag_id: DagIdFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> DagRunList:
    return await dag_runs.list_dag_runs(db_session, dag_id=dag_id, limit=limit, offset=offset)


@post(
    "/api/v1/dag-runs",
    operation_id="createDagRun",
    tags=["admin"],
    opt=ADMIN,
    status_code=201,
    dto=json_body(DagRunBody),
    return_dto=None,
    responses=problems(*WITH_BODY, 409),
)
async def create_dag_run(db_session: DbSession, data: JSONBody[DagRunBody]) -> DagRun:
    return await dag_runs.create_dag_run(db_session, data)


router = Router("/", route_handlers=[get_dag_run_state, list_dag_runs, create_dag_run])
