"""Liveness and readiness, open to everyone."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from tocsin_server.api._common import problems
from tocsin_server.db.health import RETRY_AFTER_S, DatabaseHealth, NotReadyError
from tocsin_server.generated.models import Health, Readiness, Status, Status1
from tocsin_server.web.auth import OPEN_ROUTE


@get("/health", operation_id="getHealth", tags=["health"], opt={OPEN_ROUTE: True}, responses=problems(400))
async def get_health() -> Health:
    return Health(status=Status.ok)


@get("/ready", operation_id="getReady", tags=["health"], opt={OPEN_ROUTE: True}, responses=problems(400, 503))
async def get_ready(request: Request[Any, Any, Any]) -> Readiness:
    health: DatabaseHealth = request.app.state.database_health
    try:
        dialect, revision = await health.ready()
    except NotReadyError as exc:
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers=retry) from None
    return Readiness(status=Status1.ready, database=dialect, migration=revision)


router = Router("/", route_handlers=[get_health, get_ready])
