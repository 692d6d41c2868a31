"""The errors of a request body, by type: what ``tocsin_server.web.problems`` maps to a status.

The body decoder (``raw_body``) and the version upgrade (``versioning``) raise these instead of Litestar's bare
``ValidationException``, so the problem map picks 400 or 422 from the exception's class and the failing field
from its attributes, never from the wording of a message. They stay ``ValidationException`` subclasses so
that anything in Litestar that treats validation errors as a client error keeps doing so.
"""

from __future__ import annotations

from litestar.exceptions import ValidationException


class MalformedBodyError(ValidationException):
    """The body is not JSON at all (or not the one JSON text a body must be): 400."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, extra=[{"message": detail, "key": "body", "source": "body"}])


class BodyMismatchError(ValidationException):
    """Well-formed JSON that does not fit the operation's schema: 422.

    ``key`` is the failing field as a path (``events[0].trigger_id``), empty when the body as a whole does
    not fit (an array where an object belongs); ``message`` says what is wrong with it.
    """

    def __init__(self, detail: str, *, key: str, message: str) -> None:
        super().__init__(detail, extra=[{"message": message, "key": key, "source": "body"}])
        self.key = key
        self.message = message
