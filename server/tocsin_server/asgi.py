"""ASGI entry point for servers that import the app by name (``uvicorn --factory``)."""

from __future__ import annotations

from litestar import Litestar

from tocsin_server.app import create_app
from tocsin_server.config import load_settings


def create_from_env() -> Litestar:
    return create_app(load_settings())
