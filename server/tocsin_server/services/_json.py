"""Stored JSON text goes back out byte for byte."""

from __future__ import annotations

from typing import Any

import msgspec


def raw_json(text: str) -> Any:
    """Wrap stored JSON text so msgspec writes it into a response verbatim, without decoding it first.

    Typed ``Any`` because it stands in for whatever JSON value the generated model's field declares.
    """
    return msgspec.Raw(text.encode())
