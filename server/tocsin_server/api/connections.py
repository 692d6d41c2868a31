"""Connections: the runtime read and the admin surface."""

from __future__ import annotations

from litestar import Router, delete, get, put
from litestar.datastructures import State
from litestar.params import JSONBody

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    RUNTIME_READ,
    WITH_BODY,
    DbSession,
    Identifier,
    Limit,
    Offset,
    problems,
)
from tocsin_server.generated.models import Connection, ConnectionBody, ConnectionInfo, ConnectionList
from tocsin_server.services import connections
from tocsin_server.web.raw_body import json_body


@get(
    "/execution/connections/{conn_id:str}",
    operation_id="getConnection",
    tags=["runtime"],
    opt=RUNTIME_READ,
    responses=problems(*AUTHED, 404),
)
async def get_connection(state: State, conn_id: Identifier) -> Connection:
    return await connections.get_connection(state.reads, conn_id, cipher=state.kwargs_cipher, cache=state.read_cache)


@get("/api/v1/connections", operation_id="listConnections", tags=["admin"], opt=ADMIN, responses=problems(*AUTHED))
async def list_connections(
    state: State, db_session: DbSession, limit: Limit = 100, offset: Offset = 0
) -> ConnectionList:
    return await connections.list_connections(db_session, limit=limit, offset=offset, cipher=state.kwargs_cipher)


@put(
    "/api/v1/connections/{conn_id:str}",
    operation_id="putConnection",
    tags=["admin"],
    opt=ADMIN,
    status_code=200,
    dto=json_body(ConnectionBody),
    return_dto=None,
    responses=problems(*WITH_BODY, 404),
)
async def put_connection(
    state: State, db_session: DbSession, conn_id: Identifier, data: JSONBody[ConnectionBody]
) -> ConnectionInfo:
    return await connections.put_connection(db_session, conn_id, data, cipher=state.kwargs_cipher)


@delete(
    "/api/v1/connections/{conn_id:str}",
    operation_id="deleteConnection",
    tags=["admin"],
    opt=ADMIN,
    responses=problems(*AUTHED, 404),
)
async def delete_connection(db_session: DbSession, conn_id: Identifier) -> None:
    await connections.delete_connection(db_session, conn_id)


router = Router("/", route_handlers=[get_connection, list_connections, put_connection, delete_connection])
