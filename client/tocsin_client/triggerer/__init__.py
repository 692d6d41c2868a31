"""The triggerer: a supervisor that speaks HTTP to the API server, and runner processes that run triggers.

It imports nothing from the server and no database driver::

    from tocsin_client.triggerer import Triggerer, TriggererConfig, run

    exit_code = run(TriggererConfig(api_url="http://localhost:8080", token=token, capacity=1000))
"""

from __future__ import annotations

import asyncio
import logging
import os

from tocsin_wire.logs import configure_logging, load_log_settings

from tocsin_client.triggerer.config import ConfigError, TriggererConfig
from tocsin_client.triggerer.supervisor import EXIT_CRASHED, EXIT_FENCED, EXIT_OK, EXIT_REFUSED, Triggerer

__all__ = [
    "EXIT_CRASHED",
    "EXIT_FENCED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "ConfigError",
    "Triggerer",
    "TriggererConfig",
    "run",
]


def run(config: TriggererConfig) -> int:
    """Run a triggerer in this process until it stops; returns the exit code. A program that configured logging
    keeps its own; otherwise the lines go through tocsin's pipeline (``TOCSIN_LOG_FORMAT``, ``TOCSIN_LOG_LEVEL``)."""
    if not logging.getLogger().handlers:
        configure_logging(load_log_settings(os.environ))

    async def main() -> int:
        return await Triggerer(config).run()

    try:
        import uvloop  # noqa: PLC0415

        return uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main())
