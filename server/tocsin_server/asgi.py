"""ASGI entry point for servers that import the app by name (``uvicorn --factory``)."""

from __future__ import annotations

import sys

from litestar import Litestar

from tocsin_server.app import create_app
from tocsin_server.commands import configure_logs
from tocsin_server.config import ConfigError, load_settings
from tocsin_server.db.preflight import check_database


def create_from_env() -> Litestar:
    """The app from ``TOCSIN_*`` variables. A configuration or database mistake ends the process here with
    one line and exit code 2, before uvicorn would turn it into a traceback."""
    try:
        configure_logs()  # a worker process of its own: uvicorn spawned it with nothing configured
        settings = load_settings()
        check_database(settings.database_url)
        return create_app(settings)  # TOCSIN_OTEL's exporter variables are checked here
    except ConfigError as exc:
        sys.stderr.write(f"tocsin api-server: configuration error: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None
