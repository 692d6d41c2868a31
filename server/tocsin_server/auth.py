"""Bearer authentication middleware and scope guards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import ASGIMiddleware

from tocsin_server.tokens import Principal, TokenAuthority, TokenError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import ASGIApp, Guard, Receive, Scope, Send

OPEN_ROUTE: Final = "open"
"""Route ``opt`` key of the routes that need no token (health, schema)."""
_AUTHORIZATION: Final = b"authorization"
_PRINCIPAL_KEY: Final = "tocsin.principal"


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
            cast("dict[str, Any]", scope)[_PRINCIPAL_KEY] = self.authority.verify(token)
        except TokenError as exc:
            raise NotAuthorizedException(str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        await next_app(scope, receive, send)


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

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection.scope)
        if principal.has_any(allowed) or (task_instance and principal.task_instance_id is not None):
            return
        msg = f"this operation needs a token with scope {described}"
        raise PermissionDeniedException(msg)

    return guard
