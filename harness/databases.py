"""Test databases: one migrated SQLite file and one migrated PostgreSQL database per session."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from tocsin_server.db import migrate
from tocsin_server.db.models import Base
from tocsin_server.services import read_invalidation

POSTGRES_ADMIN_DSN = os.environ.get("TOCSIN_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
EVERYTHING = read_invalidation.EVERYTHING
_TABLES = [table.name for table in reversed(Base.metadata.sorted_tables)]


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"tocsin_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def sqlite_database(folder: Path) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{folder / 'tocsin-test.db'}"
    migrate.upgrade(url)
    yield url


async def _truncate_postgres(url: str) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        # A live server caches its hot reads and forgets them when a write's notice says so: rows deleted behind
        # its back must say so too (as an operator's manual write would), in the same transaction. Hearing our own
        # notice means PostgreSQL has handed it to every listener.
        heard = asyncio.Event()
        await connection.add_listener(read_invalidation.CHANNEL, lambda *_: heard.set())
        # A live server's periodic duties (timeouts, cleanup) may hold row locks while TRUNCATE takes its table
        # locks one by one; PostgreSQL then breaks the deadlock by failing one side. Try again: it is transient.
        for attempt in range(5):
            try:
                async with connection.transaction():
                    await connection.execute(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE")
                    await connection.execute("SELECT pg_notify($1, $2)", read_invalidation.CHANNEL, EVERYTHING)
                await asyncio.wait_for(heard.wait(), 10)
                return
            except asyncpg.exceptions.DeadlockDetectedError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
    finally:
        await connection.close()


def empty_database(url: str) -> None:
    """Delete every row, keep the schema."""
    if url.startswith("postgresql"):
        asyncio.run(_truncate_postgres(url))
        return
    connection = sqlite3.connect(url.split("///", 1)[1], timeout=30)
    try:
        connection.execute("PRAGMA foreign_keys=OFF")
        for table in _TABLES:
            connection.execute(f"DELETE FROM {table}")
        connection.execute("DELETE FROM sqlite_sequence")  # ids start at 1 again, as RESTART IDENTITY does
        connection.commit()
    finally:
        connection.close()
