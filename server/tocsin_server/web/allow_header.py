"""Litestar 2's automatic OPTIONS answer lists only the first handler's method on a path with several
(litestar#4169, fixed in 3.0). This ``before_send`` hook writes the full ``Allow`` list instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from litestar.types import Message, Scope


async def complete_allow_header(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start" or cast("dict[str, Any]", scope).get("method") != "OPTIONS":
        return
    handler = scope.get("route_handler")
    if handler is None:
        return
    method_map = scope["litestar_app"].route_handler_method_map
    methods = {method for path in handler.paths for method in method_map.get(path, {})}
    if methods:
        allow = ", ".join(sorted(methods | {"OPTIONS"})).encode()
        message["headers"] = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"allow"] + [
            (b"allow", allow)
        ]
