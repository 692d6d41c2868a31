"""The HTTP header names of the tocsin wire protocol."""

from __future__ import annotations

from typing import Final

VERSION_HEADER: Final = "Tocsin-API-Version"
"""The dated API version a request asks for; every response names the version that served it."""
REFRESH_HEADER: Final = "Refreshed-API-Token"
"""A fresh token for the caller, sent by the server shortly before the caller's token expires."""
