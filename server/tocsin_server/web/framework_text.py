"""The one place that reads Litestar's and msgspec's English, for the facts they report only as text.

Everything else maps errors by exception type and structured fields (``tocsin_server.web.body_errors``,
Litestar's ``ValidationException.extra``). Two facts exist only in message text:

- where a ``msgspec.ValidationError`` happened (msgspec has no path attribute; it appends ``- at `$.path```),
  and which field a "missing required field" / "unknown field" error is about, when it happened at the top;
- which parameter Litestar found missing (``Missing required query parameter 'run_id' for path ...``, raised
  with no ``extra``).

The patterns were read off the versions below (those of constraints.txt). tests/unit/test_framework_text.py
holds one test per pattern, each against the real library, and one that the installed versions are these: an
upgrade that rewords a message fails a test instead of quietly turning a 422 into a 400 or losing a name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import msgspec

CHECKED_AGAINST: Final = {"litestar": "2.25.0", "msgspec": "0.22.0"}
"""The framework versions whose wording the patterns below match."""

_AT_PATH: Final = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
"""msgspec: ``Expected `int`, got `str` - at `$.events[0].trigger_id``` (no suffix at the top level)."""
_NAMED_FIELD: Final = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`$")
"""msgspec: ``Object missing required field `value``` and ``Object contains unknown field `extra```."""
_MISSING_PARAMETER: Final = re.compile(r"^Missing required (?P<source>\w+) parameter '(?P<name>[^']+)'")
"""Litestar (``_kwargs/extractors.py``): ``Missing required query parameter 'run_id' for path /...``."""


def msgspec_error_location(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``(message, path)`` of a msgspec validation error: the message without its location, and the path of
    the value it is about without the leading ``$.`` (``""`` for the top-level value)."""
    match = _AT_PATH.match(str(exc))
    if match is None:  # the pattern's every part is optional: it matches any text
        return str(exc), ""
    return match.group("message"), (match.group("path") or "").lstrip(".")


def msgspec_named_field(message: str) -> str | None:
    """The field a "missing required" or "unknown" field message names, else None."""
    match = _NAMED_FIELD.match(message)
    return match.group("name") if match else None


def litestar_missing_parameter(detail: str) -> tuple[str, str] | None:
    """``(source, name)`` of the parameter a Litestar "missing required parameter" error names, else None."""
    match = _MISSING_PARAMETER.match(detail)
    return (match.group("source"), match.group("name")) if match else None
