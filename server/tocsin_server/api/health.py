"""Liveness and readiness, open to everyone."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from tocsin_server.api._common import problems
from tocsin_server.auth import OPEN_ROUTE
from tocsin_server.generated.models import Health, Readiness, Status, Status1
from tocsin_server.services import readiness


@get("/health", operation_id="getHealth", tags=["health"], opt={OPEN_ROUTE: True}, responses=problems(400))
async def get_health() -> Health:
    return Health(status=Status.ok)


@get("/ready", operation_id="getReady", tags=["health"], opt={OPEN_ROUTE: True}, responses=problems(400, 503))
async def get_ready(request: Request[Any, Any, Any]) -> Readiness:
    state = request.app.state
    try:
        dialect, revision = await readiness.check(state.reads, dialect=state.dialect)
    except readiness.NotReadyError as exc:
        raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
    return Readiness(status=Status1.ready, database=dialect, migration=revision)
