"""Contract-gate fixtures."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from tocsin_server.app import create_app
from tocsin_server.config import Settings


@pytest.fixture(scope="module")
def live_schema() -> dict[str, Any]:
    """Litestar's own schema of the app: the "live schema" of the contract gate."""
    app: Litestar = create_app(
        Settings(database_url="sqlite+aiosqlite:///:memory:", jwt_secret="x" * 40), live_schema=True
    )
    schema: dict[str, Any] = app.openapi_schema.to_schema()
    return schema
