"""How a task instance leaves its deferral failed: shared by events, timeouts and the change log's reasons.

A leaf (it imports no service), so the change log can name ``FAIL_METHOD`` while events write change-log rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence

FAIL_METHOD: Final = "__fail__"
"""The next_method of a task instance resumed only to fail (its trigger failed, timed out, or its kwargs broke)."""
_ENCODE: Final = msgspec.json.Encoder()


def fail_kwargs(error: str, traceback: Sequence[str] = ()) -> str:
    return _ENCODE.encode({"error": error, "traceback": list(traceback)}).decode()
