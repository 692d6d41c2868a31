"""Variables: runtime reads and writes, and the admin list."""

from __future__ import annotations

from litestar import Router, delete, get, put
from litestar.datastructures import State
from litestar.params import JSONBody

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    RUNTIME_READ,
    RUNTIME_WRITE,
    WITH_BODY,
    DbSession,
    Identifier,
    Limit,
    Offset,
    problems,
)
from tocsin_server.generated.models import Variable, VariableBody, VariableList
from tocsin_server.services import variables
from tocsin_server.web.raw_body import json_body


@get(
    "/execution/variables/{key:str}",
    operation_id="getVariable",
    tags=["runtime"],
    opt=RUNTIME_READ,
    responses=problems(*AUTHED, 404),
)
async def get_variable(state: State, key: Identifier) -> Variable:
    return await variables.get_variable(state.reads, key, cipher=state.kwargs_cipher, cache=state.read_cache)


@put(
    "/execution/variables/{key:str}",
    operation_id="putVariable",
    tags=["runtime"],
    opt=RUNTIME_WRITE,
    status_code=200,
    dto=json_body(VariableBody),
    return_dto=None,
    responses=problems(*WITH_BODY, 404),
)
async def put_variable(state: State, db_session: DbSession, key: Identifier, data: JSONBody[VariableBody]) -> Variable:
    return await variables.put_variable(db_session, key, data, cipher=state.kwargs_cipher)


@delete(
    "/execution/variables/{key:str}",
    operation_id="deleteVariable",
    tags=["runtime"],
    opt=RUNTIME_WRITE,
    responses=problems(*AUTHED, 404),
)
async def delete_variable(db_session: DbSession, key: Identifier) -> None:
    await variables.delete_variable(db_session, key)


@get("/api/v1/variables", operation_id="listVariables", tags=["admin"], opt=ADMIN, responses=problems(*AUTHED))
async def list_variables(state: State, db_session: DbSession, limit: Limit = 100, offset: Offset = 0) -> VariableList:
    return await variables.list_variables(db_session, limit=limit, offset=offset, cipher=state.kwargs_cipher)


router = Router("/", route_handlers=[get_variable, put_variable, delete_variable, list_variables])
