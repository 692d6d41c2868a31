"""Exceptions raised by the tocsin client.

The hierarchy, as in httpx::

    TocsinError
    ├── TransportError          no usable response: connect error, timeout, broken connection
    ├── DecodeError             the expected status came with a body that does not fit the contract
    └── APIError                any unexpected status; carries the parsed problem+json body
        ├── BadRequestError          400
        ├── UnauthorizedError        401
        ├── ForbiddenError           403
        ├── NotFoundError            404
        ├── ConflictError            409
        ├── HistoryExpiredError      410  (``oldest_version``: the oldest change the watch feed still keeps)
        ├── PayloadTooLargeError     413
        ├── ValidationError          422
        ├── RateLimitedError         429  (transient)
        └── ServerError              5xx  (transient)

``exc.transient`` (or ``is_transient(exc)``) says whether retrying the same call later may succeed, and
``exc.kind`` names the problem (``"database-unavailable"``, ``"json-too-deep"``, ...; the kinds are listed in
``tocsin_wire.problems``), for callers that must tell two causes of one status apart.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tocsin_wire.problems import kind_of

from tocsin_client.generated.models import HistoryExpiredProblem, Problem

__all__ = [
    "APIError",
    "BadRequestError",
    "ConflictError",
    "DecodeError",
    "ForbiddenError",
    "HistoryExpiredError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServerError",
    "TocsinError",
    "TransportError",
    "UnauthorizedError",
    "ValidationError",
    "error_for_status",
    "is_transient",
]


class TocsinError(Exception):
    """A call to the tocsin API failed."""

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed when retried later."""
        return False


class TransportError(TocsinError):
    """No usable response: the connection failed, timed out or broke."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self._transient = transient

    @property
    def transient(self) -> bool:
        """True unless the request itself can never be sent (e.g. an unsupported URL scheme)."""
        return self._transient

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_transport_error, (str(self), self._transient)


def _rebuild_transport_error(message: str, transient: bool) -> TransportError:
    return TransportError(message, transient=transient)


class DecodeError(TocsinError):
    """The server answered the expected status with a body that does not fit the contract."""


class APIError(TocsinError):
    """The server answered with a status the operation does not expect."""

    status_code: ClassVar[int | None] = None

    def __init__(self, status: int, problem: Problem, *, method: str = "", path: str = "") -> None:
        super().__init__(status, problem, method, path)
        self.status = status
        self.problem = problem
        self.method = method
        self.path = path

    @property
    def kind(self) -> str | None:
        """The problem's kind (its ``type`` without ``urn:tocsin:problem:``); None for a problem not of tocsin's
        making, such as a proxy's error page turned into a problem by the client."""
        return kind_of(self.problem.type)

    def __str__(self) -> str:
        detail = self.problem.detail if isinstance(self.problem.detail, str) else ""
        where = f" ({self.method} {self.path})" if self.method else ""
        text = f"{self.status} {self.problem.title}"
        return f"{text}: {detail}{where}" if detail else f"{text}{where}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive Exception's default pickling; runners may live in other processes.
        return _rebuild_api_error, (type(self), self.status, self.problem, self.method, self.path)


def _rebuild_api_error(cls: type[APIError], status: int, problem: Problem, method: str, path: str) -> APIError:
    return cls(status, problem, method=method, path=path)


class BadRequestError(APIError):
    """400: the request is malformed (or names an unknown API version)."""

    status_code = 400


class UnauthorizedError(APIError):
    """401: the token is missing, expired, tampered with or for another audience."""

    status_code = 401


class ForbiddenError(APIError):
    """403: the token is valid but lacks the scope for this call."""

    status_code = 403


class NotFoundError(APIError):
    """404: the resource does not exist (or the operation does not exist in this API version)."""

    status_code = 404


class ConflictError(APIError):
    """409: the resource belongs to someone else now, or the state changed under the call."""

    status_code = 409


class HistoryExpiredError(APIError):
    """410: the change-log version asked for is older than the retained history; changes after it are gone.

    ``oldest_version`` names the oldest change still kept: read on from just before it knowingly (some changes
    were missed), or list the task instances again and watch from the newest version.
    """

    status_code = 410

    @property
    def oldest_version(self) -> int | None:
        """The oldest version the server still keeps; None when the 410 did not come from tocsin (a proxy's)."""
        return self.problem.oldest_version if isinstance(self.problem, HistoryExpiredProblem) else None


class PayloadTooLargeError(APIError):
    """413: the request body is larger than the server accepts."""

    status_code = 413


class ValidationError(APIError):
    """422: well-formed JSON that does not fit the schema; ``problem.errors`` names each field."""

    status_code = 422


class RateLimitedError(APIError):
    """429: too many requests; retry later."""

    status_code = 429

    @property
    def transient(self) -> bool:
        """Always true: waiting is the remedy."""
        return True


class ServerError(APIError):
    """5xx: the server (or a proxy in front of it) failed; retry later."""

    @property
    def transient(self) -> bool:
        """Always true: the server may recover."""
        return True


_BY_STATUS: dict[int, type[APIError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        HistoryExpiredError,
        PayloadTooLargeError,
        ValidationError,
        RateLimitedError,
    )
    if cls.status_code is not None
}


def error_for_status(status: int) -> type[APIError]:
    """The exception class for an unexpected HTTP status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the failed call later may succeed (transport errors, 429, 5xx)."""
    return isinstance(exc, TocsinError) and exc.transient
