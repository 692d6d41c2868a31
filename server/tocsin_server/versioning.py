"""Dated API versions chosen per request by the ``Tocsin-API-Version`` header.

Handlers are written for the latest version only. Older versions are served by declared changes applied
here: a route declares the version it appeared in with ``opt={"since": "YYYY-MM-DD"}`` and answers 404 to
older requests. The resolved version is echoed on every response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from litestar.enums import ScopeType
from litestar.exceptions import NotFoundException
from litestar.middleware import ASGIMiddleware

from tocsin_server.errors import InvalidError

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

VERSION_HEADER: Final = "Tocsin-API-Version"
VERSIONS: Final = ("2026-06-01", "2026-11-01")
"""Every supported version, oldest first. Each has a frozen spec file in openapi/versions/."""
LATEST: Final = VERSIONS[-1]

_HEADER_KEY: Final = VERSION_HEADER.lower().encode()
_SCOPE_KEY: Final = "tocsin.api_version"
_SUPPORTED: Final = frozenset(VERSIONS)


class UnsupportedVersionError(InvalidError):
    """Unsupported API version."""

    def __init__(self, requested: str) -> None:
        super().__init__(
            f"API version {requested!r} is not supported; send one of {', '.join(VERSIONS)} "
            f"in the {VERSION_HEADER} header, or leave it out for the latest",
            field=VERSION_HEADER,
        )
        self.supported_versions = VERSIONS


def requested_version(scope: Scope) -> str | None:
    """The raw header value, or None when the request has no version header."""
    for name, value in scope["headers"]:
        if name == _HEADER_KEY:
            return value.decode("latin-1")
    return None


def resolve_version(raw: str | None) -> str:
    """Missing means the latest; anything else must be a supported version (an empty value is not)."""
    if raw is None:
        return LATEST
    if raw not in _SUPPORTED:
        raise UnsupportedVersionError(raw)
    return raw


def _extensions(scope: Scope) -> dict[str, Any]:
    """The scope as a plain dict: the ASGI scope may carry keys of ours beside the standard ones."""
    return cast("dict[str, Any]", scope)


def api_version(scope: Scope) -> str:
    """The version resolved for this request by the middleware."""
    return str(_extensions(scope).get(_SCOPE_KEY, LATEST))


class ApiVersionMiddleware(ASGIMiddleware):
    """Resolves the version and hides routes that do not exist in it."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        version = resolve_version(requested_version(scope))
        _extensions(scope)[_SCOPE_KEY] = version
        since = scope["route_handler"].opt.get("since")
        if since is not None and version < since:
            msg = f"{_extensions(scope)['method']} {scope['path']} does not exist in API version {version} (added in {since})"
            raise NotFoundException(msg)
        await next_app(scope, receive, send)


async def echo_version(message: Message, scope: Scope) -> None:
    """``before_send`` hook: every response names the version that served it, router 404s and 405s too."""
    if message["type"] != "http.response.start":
        return
    version: str | None = _extensions(scope).get(_SCOPE_KEY)
    if version is None:
        raw = requested_version(scope)
        version = LATEST if raw is None else raw if raw in _SUPPORTED else None
    if version is not None:
        message["headers"] = [*message.get("headers", ()), (_HEADER_KEY, version.encode())]
