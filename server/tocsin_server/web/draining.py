"""The HTTP server is stopping: tell the parts of the app that hold answers open (the watch streams).

uvicorn's graceful shutdown waits for every open answer to finish before it runs the app's lifespan shutdown,
so an endless stream would hold the server up for good. Its HTTP protocol (``web.http_limits``) calls ``drain``
when the shutdown begins; the app ends its streams and long polls then, and the server stops promptly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

_CALLBACKS: Final[list[Callable[[], None]]] = []


def on_drain(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` when the server starts to shut down; returns what unregisters it."""
    _CALLBACKS.append(callback)

    def remove() -> None:
        if callback in _CALLBACKS:
            _CALLBACKS.remove(callback)

    return remove


def drain() -> None:
    """The server is shutting down (called once per open connection; each callback must be idempotent)."""
    for callback in list(_CALLBACKS):
        callback()
