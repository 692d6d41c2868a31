"""XComs: runtime read and push."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post
from litestar.datastructures import State
from litestar.params import JSONBody

from tocsin_server.api._common import (
    AUTHED,
    RUNTIME_READ,
    RUNTIME_WRITE,
    WITH_BODY,
    DagId,
    DbSession,
    Identifier,
    MapIndex,
    RunId,
    TaskId,
    problems,
)
from tocsin_server.generated.models import XCom, XComBody
from tocsin_server.services import xcoms
from tocsin_server.web.auth import ensure_dag_run_access
from tocsin_server.web.raw_body import json_body

PATH = "/execution/xcoms/{dag_id:str}/{run_id:str}/{task_id:str}/{key:str}"


@get(PATH, operation_id="getXCom", tags=["runtime"], opt=RUNTIME_READ, responses=problems(*AUTHED, 404))
async def get_xcom(
    request: Request[Any, Any, Any],
    state: State,
    dag_id: DagId,
    run_id: RunId,
    task_id: TaskId,
    key: Identifier,
    map_index: MapIndex = -1,
) -> XCom:
    ensure_dag_run_access(request.scope, dag_id, run_id)
    return await xcoms.get_xcom(
        state.reads, xcoms.XComKey(dag_id, run_id, task_id, map_index, key), cache=state.read_cache
    )


@post(
    PATH,
    operation_id="setXCom",
    tags=["runtime"],
    opt=RUNTIME_WRITE,
    status_code=201,
    dto=json_body(XComBody),
    return_dto=None,
    responses=problems(*WITH_BODY, 404),
)
async def set_xcom(
    db_session: DbSession,
    dag_id: DagId,
    run_id: RunId,
    task_id: TaskId,
    key: Identifier,
    data: JSONBody[XComBody],
    map_index: MapIndex = -1,
) -> XCom:
    return await xcoms.set_xcom(db_session, xcoms.XComKey(dag_id, run_id, task_id, map_index, key), data)


router = Router("/", route_handlers=[get_xcom, set_xcom])
