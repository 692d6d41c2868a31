"""The HTTP request metrics: a count by operation and status, and a latency histogram by operation.

Two pieces, because an error raised by a middleware (a 401 from the bearer check, a 404 for a version that lacks
the route) is answered by the app's exception handler outside every middleware: ``RequestTimer``, the first
middleware, notes when a request reached its route, and the ``before_send`` hook ``record_response`` sees every
response start, those answers included, with its status. A request no route matched (a router 404 or 405) is
counted as operation ``unmatched``, without a latency (it never reached a route). The operation is the route's
``operationId`` (the handler's name for the few routes outside the contract, such as ``/metrics``): never the
raw path, so the label set stays as small as the API.

Per request: one clock read, one dict lookup and two increments of already-labelled children.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final, cast

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from tocsin_server import metrics

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestTimer", "record_response"]

_STARTED: Final = "tocsin.started"
UNMATCHED: Final = "unmatched"

_children: dict[tuple[str, int], tuple[Any, Any]] = {}
"""(operation, status) → the labelled children: ``labels()`` validates and locks on every call."""


class RequestTimer(ASGIMiddleware):
    """Notes the moment a request reached its route (the latency's start)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        cast("dict[str, Any]", scope)[_STARTED] = time.perf_counter()
        await next_app(scope, receive, send)


def operation_of(handler: object) -> str:
    """The bounded label naming the route ``handler`` serves."""
    if handler is None:
        return UNMATCHED
    operation_id = getattr(handler, "operation_id", None)
    return operation_id if isinstance(operation_id, str) else str(getattr(handler, "handler_name", UNMATCHED))


def _children_for(operation: str, status: int) -> tuple[Any, Any]:
    found = _children.get((operation, status))
    if found is None:
        found = _children[operation, status] = (
            metrics.HTTP_REQUESTS.labels(operation, str(status)),
            None if operation == UNMATCHED else metrics.HTTP_DURATION.labels(operation),  # no route: no start
        )
    return found


async def record_response(message: Message, scope: Scope) -> None:
    """``before_send`` hook: count the response when its headers go out."""
    if message["type"] != "http.response.start":
        return
    extended = cast("dict[str, Any]", scope)
    count, duration = _children_for(operation_of(extended.get("route_handler")), message["status"])
    count.inc()
    started = extended.get(_STARTED)
    if started is not None and duration is not None:
        duration.observe(time.perf_counter() - started)
