"""Bearer authentication middleware and scope guards."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final, cast

from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import ASGIMiddleware

from tocsin_server.web.tokens import Principal, TokenAuthority, TokenError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import ASGIApp, Guard, Message, Receive, Scope, Send

OPEN_ROUTE: Final = "open"
"""Route ``opt`` key of the routes that need no token (health, schema)."""
REFRESH_HEADER: Final = "Refreshed-API-Token"
"""Response header carrying a fresh token when a job or task-instance token is past half its lifetime."""
_AUTHORIZATION: Final = b"authorization"
_REFRESH_KEY: Final = REFRESH_HEADER.lower().encode()
_PRINCIPAL_KEY: Final = "tocsin.principal"
_RUN_WIDE: Final = frozenset({"worker", "admin"})


class BearerAuthMiddleware(ASGIMiddleware):
    """Verifies the bearer token of every route but the open ones; 401 when it is missing or bad."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = OPEN_ROUTE

    def __init__(self, authority: TokenAuthority) -> None:
        self.authority = authority

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if cast("dict[str, Any]", scope).get("method") == "OPTIONS":
            await next_app(scope, receive, send)  # Litestar's automatic OPTIONS answer reveals nothing
            return
        token = _bearer(scope)
        if token is None:
            msg = "this operation needs a bearer token (Authorization: Bearer <token>)"
            raise NotAuthorizedException(msg, headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = self.authority.verify(token)
        except TokenError as exc:
            raise NotAuthorizedException(str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        cast("dict[str, Any]", scope)[_PRINCIPAL_KEY] = principal
        if not principal.needs_refresh(time.time()):
            await next_app(scope, receive, send)
            return
        fresh = self.authority.refreshed(token, principal).encode()

        async def send_refreshed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (_REFRESH_KEY, fresh)]
            await send(message)

        await next_app(scope, receive, send_refreshed)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _AUTHORIZATION:
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" and token.strip() else None
    return None


def principal_of(scope: Scope) -> Principal:
    principal: Principal = cast("dict[str, Any]", scope)[_PRINCIPAL_KEY]
    return principal


def requires(*scopes: str, task_instance: bool = False) -> Guard:
    """A guard admitting tokens that carry one of ``scopes`` (or any task-instance token if asked)."""
    allowed = frozenset(scopes)
    described = " or ".join([*(f"'{s}'" for s in scopes), *(["a task-instance token"] if task_instance else [])])

    # async: Litestar runs a sync guard on a worker thread, which cost ~40 µs per request (benchmarks).
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection.scope)
        if principal.has_any(allowed) or (task_instance and principal.task_instance_id is not None):
            return
        msg = f"this operation needs a token with scope {described}"
        raise PermissionDeniedException(msg)

    return guard


def ensure_dag_run_access(scope: Scope, dag_id: str, run_id: str) -> None:
    """A task-instance token reads only its own dag run's data; worker and admin tokens read any."""
    principal = principal_of(scope)
    if principal.has_any(_RUN_WIDE) or principal.dag_run == (dag_id, run_id):
        return
    msg = f"this task-instance token may read only its own dag run, not {dag_id}/{run_id}"
    raise PermissionDeniedException(msg)


def job_id_of(scope: Scope) -> int:
    """The job a job-scoped token speaks for; 403 for any other token."""
    job_id = principal_of(scope).job_id
    if job_id is None:
        msg = "this operation needs the job-scoped token that registerJob returned"
        raise PermissionDeniedException(msg)
    return job_id


async def requires_job(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a job-scoped token."""
    job_id_of(connection.scope)
