"""``/metrics``: the Prometheus scrape, an operational endpoint like ``/docs`` (outside the contract, open: a
scraper carries no token; keep it off untrusted networks, see docs/operations.md)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get

from tocsin_server import metrics
from tocsin_server.web.auth import OPEN_ROUTE


@get("/metrics", include_in_schema=False, opt={OPEN_ROUTE: True}, sync_to_thread=False)
def get_metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    body, content_type = metrics.exposition(request.headers.get("accept", ""))
    return Response(body, headers={"content-type": content_type})  # exactly as negotiated, no charset added twice


router = Router("/", route_handlers=[get_metrics])
