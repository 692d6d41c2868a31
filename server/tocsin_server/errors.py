"""Domain errors. Services raise these; ``tocsin_server.web.problems`` maps them to HTTP in one place.

ServiceError
 ├── NotFoundError      the named thing does not exist
 ├── ConflictError      the request conflicts with the current state
 ├── ForbiddenError     the caller may not act on this resource (another job's, another task's)
 ├── TooLargeError      a value is larger than the configured limit
 ├── InvalidError       the request is well-formed but not acceptable (names the field)
 └── HistoryExpiredError  a change-log version older than the retained history (410)
"""

from __future__ import annotations


class ServiceError(Exception):
    """The service could not do what was asked."""

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.field = field
        super().__init__(self.message)


class NotFoundError(ServiceError):
    """Not found."""


class ConflictError(ServiceError):
    """The request conflicts with the current state."""


class InvalidError(ServiceError):
    """The request is not acceptable."""


class ForbiddenError(ServiceError):
    """The caller may not act on this resource."""


class TooLargeError(ServiceError):
    """A value is larger than the server accepts."""


class HistoryExpiredError(ServiceError):
    """The version asked for is older than the retained history: changes after it were deleted."""

    def __init__(self, after: int, oldest_version: int) -> None:
        super().__init__(
            f"changes after version {after} are no longer kept (the oldest kept is {oldest_version}): "
            "list the task instances again, or read on after a newer version knowingly",
            field="after",
        )
        self.oldest_version = oldest_version
