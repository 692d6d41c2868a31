"""Request bodies are checked before any JSON decoder sees them: UTF-8 throughout and a bounded nesting depth.

msgspec decodes nested arrays and objects recursively (raw fields too, to find where they end), so a body
nested some thousand levels deep raises ``RecursionError`` wherever it is decoded, and invalid UTF-8 inside a
string raises ``UnicodeDecodeError`` (raw fields keep it, to fail later in the database). Both are the
client's mistake: one cheap scan of the bytes answers them with 400 before the recursive decode runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from tocsin_wire.problems import INVALID_UTF8, JSON_TOO_DEEP

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

MAX_JSON_DEPTH: Final = 100
"""The deepest nesting of arrays and objects a request body may have (``{"a": [1]}`` is 2 deep); documented in
the spec (``info.description``, the 400 response). Far above any real payload, far below the decoder's limit."""

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND: Final = bytes.maketrans(b"{}", b"[]")


class BodyRejectedError(Exception):
    """The body is not JSON any decoder should be given; ``kind`` names the problem type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def nesting_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in ``body`` nest deeper than ``limit`` (brackets inside strings do not count).

    Every step is a C-level pass over bytes (no per-byte Python loop): a body with at most ``limit`` opening
    brackets cannot be too deep; otherwise escapes are dropped (``\\\\`` then ``\\"``, which pairs backslashes as
    JSON does), the strings are cut out between their quotes, only the brackets are kept (one kind: the decoder
    checks that they match), and each ``replace("[]", "")`` pass removes exactly one level of nesting.

    Exact for well-formed JSON. For malformed JSON (which the decoder refuses anyway) it may misjudge, but never
    lets through more than ``2 * limit`` levels: the balanced part is peeled at most ``limit`` times, and more
    than ``limit`` openers left unclosed count as too deep. That stays far below the decoder's own limit.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    brackets = outside_strings.translate(_ONE_KIND, _NOT_BRACKETS)
    for _ in range(limit):
        peeled = brackets.replace(b"[]", b"")
        if peeled == brackets:
            return brackets.count(b"[") > limit  # what is left cannot pair up: only unclosed openers nest
        brackets = peeled
    return b"[]" in brackets or brackets.count(b"[") > limit


def check_json_body(body: bytes) -> None:
    """Raise ``BodyRejectedError`` for a body that is not UTF-8 or nests deeper than ``MAX_JSON_DEPTH``."""
    try:
        body.decode("utf-8")  # JSON is UTF-8 throughout (RFC 8259 section 8.1), not only inside strings
    except UnicodeDecodeError as exc:
        msg = f"the body is not valid UTF-8 (byte {exc.start}); JSON text must be UTF-8"
        raise BodyRejectedError(INVALID_UTF8, msg) from None
    if nesting_depth_exceeds(body):
        msg = f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels, the most this server accepts"
        raise BodyRejectedError(JSON_TOO_DEEP, msg)


class JsonBodyGuard(ASGIMiddleware):
    """Checks the body of every request that may carry one before the handler decodes it.

    The body is read through Litestar's own ``Request.body()``, which enforces the size limit (413) and keeps
    the bytes for the handler, so the body is received once.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if cast("dict[str, Any]", scope).get("method") in _BODY_METHODS:
            check_json_body(await Request[Any, Any, Any](scope, receive).body())
        await next_app(scope, receive, send)
