"""Before a command uses the database: connect once, and turn a mistake into one line with its fix.

``tocsin api-server``, ``tocsin db …`` and ``tocsin standalone`` call this first, so a database that does
not exist, nothing listening on the port or a SQLite folder that does not exist is a ``ConfigError`` (one
line on stderr, exit 2) instead of a driver traceback.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tocsin_server.config import ConfigError
from tocsin_server.db.diagnose import VARIABLE, Target, explain, missing_folder

CONNECT_TIMEOUT_S: Final = 10.0


class DatabaseUnusableError(ConfigError):
    """The configured database cannot be used; the message names the variable, the problem and the fix."""


def _unusable(target: Target, reason: str) -> DatabaseUnusableError:
    return DatabaseUnusableError(f"{VARIABLE}={target.url.render_as_string(hide_password=True)}: {reason}")


async def _probe(database_url: str) -> None:
    target = Target(make_url(database_url))
    path = target.sqlite_path
    if path is not None and not path.parent.is_dir():
        raise _unusable(target, missing_folder(path))
    connect_args = {} if target.is_sqlite else {"timeout": CONNECT_TIMEOUT_S}
    engine = create_async_engine(database_url, poolclass=NullPool, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line; explain() names the known ones
        reason = explain(exc, target) or f"the database cannot be used ({type(exc).__name__})"
        raise _unusable(target, reason) from None
    finally:
        await engine.dispose()


def check_database(database_url: str) -> None:
    """Raise DatabaseUnusableError when the database cannot be reached as configured.

    Runs its own event loop in a thread, so it works whether or not the caller runs a loop (uvicorn calls the
    app factory from inside one)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_probe(database_url))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="tocsin-database-check")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
