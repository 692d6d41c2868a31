"""The problem types of the tocsin wire: RFC 9457 ``type`` URNs the server sends and clients match on.

A problem's ``type`` is ``urn:tocsin:problem:<kind>``. A few kinds name a cause more precisely than the status
(a body nested too deep, a database away); every other problem's kind is its status's. Those kinds are written
out here rather than derived from ``http.HTTPStatus`` phrases at run time: Python renames phrases (3.13 calls 413
"Content Too Large" and 422 "Unprocessable Content"), and a URN clients match on must not change with the
interpreter the server happens to run on.
"""

from __future__ import annotations

from typing import Final

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
"""The media type of every error body (RFC 9457)."""
TYPE_PREFIX: Final = "urn:tocsin:problem:"
"""What every problem ``type`` starts with; the rest is the kind."""

# Kinds that name a cause, not a status.
VALIDATION: Final = "validation"
"""400/422: the request does not fit the schema; ``errors`` names the fields."""
JSON_TOO_DEEP: Final = "json-too-deep"
"""400: the body nests arrays and objects deeper than the server decodes."""
INVALID_UTF8: Final = "invalid-utf-8"
"""400: the body is not UTF-8 throughout."""
UNSUPPORTED_VERSION: Final = "unsupported-version"
"""400: the ``Tocsin-API-Version`` header names a version this server does not serve."""
UNSTORABLE_VALUE: Final = "unstorable-value"
"""422: a value passed validation but the database cannot store it."""
DATABASE_UNAVAILABLE: Final = "database-unavailable"
"""503: the database is unreachable or not the migrated one; retry after ``Retry-After`` seconds."""
HISTORY_EXPIRED: Final = "history-expired"
"""410: the watch feed no longer keeps the changes after the version asked for; ``oldest_version`` names the oldest
kept."""

STATUS_KINDS: Final[dict[int, str]] = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    408: "request-timeout",
    409: "conflict",
    411: "length-required",
    413: "request-entity-too-large",
    414: "uri-too-long",
    415: "unsupported-media-type",
    422: "unprocessable-entity",
    429: "too-many-requests",
    431: "request-header-fields-too-large",
    500: "internal-server-error",
    501: "not-implemented",
    503: "service-unavailable",
}
"""The kind of a problem that names no cause of its own, by status (the Python 3.11 phrases, kept fixed)."""
STATUS_FALLBACK: Final = "http-error"
"""The kind of a status missing from ``STATUS_KINDS`` (the framework may answer one the server never chose)."""

KINDS: Final[frozenset[str]] = frozenset(
    {
        VALIDATION,
        JSON_TOO_DEEP,
        INVALID_UTF8,
        UNSUPPORTED_VERSION,
        UNSTORABLE_VALUE,
        DATABASE_UNAVAILABLE,
        HISTORY_EXPIRED,
        STATUS_FALLBACK,
        *STATUS_KINDS.values(),
    }
)
"""Every kind the server sends."""


def kind_of_status(status: int) -> str:
    """The kind of a problem that names no cause of its own."""
    return STATUS_KINDS.get(status, STATUS_FALLBACK)


def problem_type(kind: str) -> str:
    """The ``type`` URN of ``kind``; an unknown kind is a programming error, caught here rather than on the wire."""
    if kind not in KINDS:
        msg = f"{kind!r} is not a tocsin problem kind (tocsin_wire.problems.KINDS)"
        raise ValueError(msg)
    return f"{TYPE_PREFIX}{kind}"


def kind_of(problem_type_urn: str) -> str | None:
    """The kind named by a problem ``type``, or None when the URN is not a tocsin one (a proxy's, say)."""
    if not problem_type_urn.startswith(TYPE_PREFIX):
        return None
    return problem_type_urn[len(TYPE_PREFIX) :]


__all__ = (
    "DATABASE_UNAVAILABLE",
    "HISTORY_EXPIRED",
    "INVALID_UTF8",
    "JSON_TOO_DEEP",
    "KINDS",
    "PROBLEM_MEDIA_TYPE",
    "STATUS_FALLBACK",
    "STATUS_KINDS",
    "TYPE_PREFIX",
    "UNSTORABLE_VALUE",
    "UNSUPPORTED_VERSION",
    "VALIDATION",
    "kind_of",
    "kind_of_status",
    "problem_type",
)
