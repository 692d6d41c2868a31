"""One log line per request: its id, the operation, method, path, status and duration.

The request id is the caller's ``X-Request-ID`` when it is a sane token (``REQUEST_ID``: up to 128 letters,
digits and ``._:-``), else a new one; it is bound to the request's context (structlog contextvars), so every other
line logged while the request runs carries it too. The operation is the contract's ``operationId`` of the route
that served it, not only its path. Neither headers nor the query string are logged: they may carry credentials.

It is the outermost route middleware, so the duration covers the others (version, auth, JSON guard) and the
status is the one sent (noted by the metrics' ``before_send`` hook), problem answers included (an inner
middleware's exception is answered outside it, with the status the exception carries). A request that matches no
route (404/405 from the router) never reaches route middleware and has no line here. The same clock read starts
the request's latency metric (``request_metrics.mark_started``): one middleware layer for both, since every layer
costs each request.

Cost: one monotonic clock pair, a header scan, and one structured line; the runtime GET is benchmarked with it.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Final

import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from tocsin_server.web.request_metrics import mark_started, status_sent

__all__ = ["REQUEST_ID", "RequestLogMiddleware"]

REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_HEADER: Final = b"x-request-id"
_NAME: Final = "tocsin.server.requests"
_PROCESS_PREFIX: Final = os.urandom(8).hex()
_SEQUENCE: Final = itertools.count()
_log = structlog.get_logger()
"""A structlog logger: ``tocsin_wire.logs`` writes its lines without the standard library's per-record work. It is
a lazy proxy, assembled at its first line, so the configuration it gets is the one the process set up by then
(a worker imports this module before it configures logging)."""


def request_id(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` if it is sane, else a new one: 32 hex digits, a random prefix drawn once per
    process and a counter (unique across processes and replicas without a ``uuid4``'s system call per request;
    uvicorn spawns its workers, so each imports this module and draws its own prefix)."""
    for name, value in scope["headers"]:
        if name == _HEADER:
            if REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return f"{_PROCESS_PREFIX}{next(_SEQUENCE):016x}"


class RequestLogMiddleware(ASGIMiddleware):
    """Writes one line per HTTP request once its response has been sent (or its handling failed)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        mark_started(scope, started)
        rid = request_id(scope)
        tokens = structlog.contextvars.bind_contextvars(request_id=rid)
        failed: int | None = None
        try:
            await next_app(scope, receive, send)
        except Exception as exc:
            # Raised by an inner middleware (auth, version, JSON guard): the app's exception handlers answer it
            # outside this one, with the status an HTTP exception carries (any other is a 500 there too).
            failed = getattr(exc, "status_code", 500)
            raise
        finally:
            # no response started and nothing raised: the handling failed before any was sent
            status = failed if failed is not None else status_sent(scope) or 500
            if structlog.is_configured():  # an in-process test app configures none: no line, no cost
                (_log.info if status < 500 else _log.error)(
                    "request",
                    logger=_NAME,
                    operation_id=getattr(scope.get("route_handler"), "operation_id", None),
                    method=scope["method"],  # type: ignore[typeddict-item]  # scopes = (HTTP,)
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            structlog.contextvars.reset_contextvars(**tokens)
