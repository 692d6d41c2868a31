"""``tocsin db upgrade|downgrade|current``: Alembic driven from code, no alembic.ini to carry around."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tocsin_server.db.preflight import check_database

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


@functools.cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this release ships; one the database has beyond these comes from a newer release."""
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config("")).walk_revisions())


def _in_thread(fn: object) -> None:
    """Alembic's env.py runs its own event loop, so never call it from a running loop's thread."""
    import threading  # noqa: PLC0415

    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def upgrade(database_url: str, revision: str = "head") -> None:
    check_database(database_url)  # a database mistake is one line (ConfigError), not Alembic's traceback
    _in_thread(lambda: command.upgrade(alembic_config(database_url), revision))


def downgrade(database_url: str, revision: str = "-1") -> None:
    check_database(database_url)
    _in_thread(lambda: command.downgrade(alembic_config(database_url), revision))


async def current_revision(database_url: str) -> str | None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:

            def read(sync: Connection) -> str | None:
                return MigrationContext.configure(sync).get_current_revision()

            return await connection.run_sync(read)
    finally:
        await engine.dispose()


def current(database_url: str) -> str | None:
    check_database(database_url)
    return asyncio.run(current_revision(database_url))
