"""Whether the ``otel`` extra is installed, asked the same way by the server and the triggerer.

The standard library only: it asks without importing OpenTelemetry, which only the sides' tracing modules
(``tocsin_server.web.tracing``, ``tocsin_client._tracing``) import, and only with ``TOCSIN_OTEL`` on.
"""

from __future__ import annotations

import importlib.util
from typing import Final

__all__ = ["MISSING_EXTRA", "otel_installed"]

MISSING_EXTRA: Final = "TOCSIN_OTEL is on but OpenTelemetry is not installed: pip install 'tocsin[otel]'"


def otel_installed(needed: tuple[str, ...]) -> bool:
    """True when every module in ``needed`` (those of the extra that one side uses) can be imported."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in needed)
    except ModuleNotFoundError:  # a parent package (opentelemetry itself) is absent
        return False
