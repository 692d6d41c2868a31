"""Bearer authentication and each operation's access rule, checked in one middleware.

Every route but the open ones declares who may call it in its ``opt`` (``access(...)``: scopes, a task-instance
token, a job token). The middleware checks the rule right after the token, so no Litestar guard runs on the hot
path: Litestar calls each guard with a copy of the route handler (~10 µs a request, benchmarks/runtime_get.sh's
profile). A route that is neither open nor declares a rule admits no token at all (fail closed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import ASGIMiddleware

from tocsin_server.web.tokens import Principal, TokenAuthority, TokenError

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

OPEN_ROUTE: Final = "open"
"""Route ``opt`` key of the routes that need no token (health, schema)."""
REFRESH_HEADER: Final = "Refreshed-API-Token"
"""Response header carrying a fresh token when a job or task-instance token is past half its lifetime."""
_AUTHORIZATION: Final = b"authorization"
_REFRESH_KEY: Final = REFRESH_HEADER.lower().encode()
_PRINCIPAL_KEY: Final = "tocsin.principal"
_RUN_WIDE: Final = frozenset({"worker", "admin"})
ACCESS: Final = "tocsin.access"
"""Route ``opt`` key of an operation's ``Access`` rule."""
_NO_RULE: Final = "this operation admits no token (it declares no access rule)"


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call an operation: a token with one of ``scopes``, a task-instance token, or a job token."""

    scopes: tuple[str, ...] = ()
    task_instance: bool = False
    job: bool = False
    allowed: frozenset[str] = frozenset()  # the scopes as a set, for the check

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", frozenset(self.scopes))

    def admits(self, principal: Principal) -> bool:
        return (
            principal.has_any(self.allowed)
            or (self.task_instance and principal.task_instance_id is not None)
            or (self.job and principal.job_id is not None)
        )

    def refusal(self) -> str:
        if self.job:
            return "this operation needs the job-scoped token that registerJob returned"
        kinds = [*(f"'{s}'" for s in self.scopes), *(["a task-instance token"] if self.task_instance else [])]
        return f"this operation needs a token with scope {' or '.join(kinds)}"


def access(*scopes: str, task_instance: bool = False) -> dict[str, Access]:
    """A route's ``opt``: admits tokens that carry one of ``scopes`` (or any task-instance token if asked)."""
    return {ACCESS: Access(scopes, task_instance=task_instance)}


JOB_ACCESS: Final = {ACCESS: Access(job=True)}
"""A route's ``opt``: admits a job-scoped token (``job:<id>``) only; the server reads the job from it."""


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
        rule: Access | None = scope["route_handler"].opt.get(ACCESS)
        if rule is None or not rule.admits(principal):
            raise PermissionDeniedException(_NO_RULE if rule is None else rule.refusal())
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
