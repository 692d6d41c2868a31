"""Asset watchers (admin, 2026-12-01): triggers that feed an asset, and the events they recorded."""

from __future__ import annotations

from typing import Annotated

from litestar import Router, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter

from tocsin_server.api._common import (
    ADMIN,
    AUTHED,
    MAX_ID,
    WITH_BODY,
    DbSession,
    Limit,
    Offset,
    problems,
)
from tocsin_server.generated.models import AssetEventList, AssetWatcher, AssetWatcherBody, AssetWatcherList
from tocsin_server.services import asset_watchers
from tocsin_server.web.raw_body import json_body

WatcherId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]


@get(
    "/api/v1/asset-watchers",
    operation_id="listAssetWatchers",
    tags=["admin"],
    opt=ADMIN,
    responses=problems(*AUTHED),
)
async def list_asset_watchers(db_session: DbSession, limit: Limit = 100, offset: Offset = 0) -> AssetWatcherList:
    return await asset_watchers.list_watchers(db_session, limit=limit, offset=offset)


@post(
    "/api/v1/asset-watchers",
    operation_id="createAssetWatcher",
    tags=["admin"],
    opt=ADMIN,
    status_code=201,
    dto=json_body(AssetWatcherBody),
    return_dto=None,
    responses=problems(*WITH_BODY),
)
async def create_asset_watcher(state: State, db_session: DbSession, data: JSONBody[AssetWatcherBody]) -> AssetWatcher:
    return await asset_watchers.create(db_session, data, cipher=state.kwargs_cipher)


@delete(
    "/api/v1/asset-watchers/{watcher_id:int}",
    operation_id="deleteAssetWatcher",
    tags=["admin"],
    opt=ADMIN,
    responses=problems(*AUTHED, 404),
)
async def delete_asset_watcher(db_session: DbSession, watcher_id: WatcherId) -> None:
    await asset_watchers.delete(db_session, watcher_id)


@get(
    "/api/v1/asset-watchers/{watcher_id:int}/events",
    operation_id="listAssetEvents",
    tags=["admin"],
    opt=ADMIN,
    responses=problems(*AUTHED, 404),
)
async def list_asset_events(
    db_session: DbSession, watcher_id: WatcherId, limit: Limit = 100, offset: Offset = 0
) -> AssetEventList:
    return await asset_watchers.list_events(db_session, watcher_id, limit=limit, offset=offset)


router = Router(
    "/", route_handlers=[list_asset_watchers, create_asset_watcher, delete_asset_watcher, list_asset_events]
)
