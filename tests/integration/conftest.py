"""Integration fixtures: the in-process app runs without its background duties, so tests decide when
cleanup, timeouts and reaping run (tests of the duties themselves start them explicitly)."""

from __future__ import annotations

import pytest
from litestar import Litestar
from tocsin_server.app import create_app
from tocsin_server.config import Settings


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings, periodic_duties=False)
