"""Engines: an ORM engine for writes and admin reads, and a lean path for the hot runtime reads."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

    from tocsin_server.config import Settings


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_open_only(database_url: str) -> str:
    """The SQLite URL the server's engines use: open the file read-write, never create it.

    Creating the database is ``tocsin db upgrade``'s work. Were the file deleted while the server runs, a new
    pooled connection would otherwise create an empty one and every statement on it fail ("no such table").
    In-memory databases and URLs that are already SQLite URIs are left as they are.
    """
    url = make_url(database_url)
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or "uri" in url.query:
        return database_url
    # a URI filename: %, ? and # in the path are escaped (SQLite decodes %HH)
    opened = url.set(database=f"file:{quote(database)}").update_query_dict({"mode": "rw", "uri": "true"})
    return opened.render_as_string(hide_password=False)


def sqlite_file_uri(database_url: str) -> str | None:
    """The SQLite URI (for the ``sqlite3`` module) that opens the file of ``database_url`` read-write without
    creating it; None for in-memory databases and URLs that are already URIs."""
    url = make_url(database_url)
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or "uri" in url.query:
        return None
    return f"file:{quote(database)}?mode=rw"


def application_name() -> str:
    """How this server process names itself to PostgreSQL (``pg_stat_activity.application_name``), so an operator
    sees which replica and process holds a connection or a lock. Read per engine: each uvicorn worker is a process
    of its own. PostgreSQL keeps 63 bytes of it."""
    return f"tocsin-api-server {os.getpid()}@{socket.gethostname()}"[:63]


def create_write_engine(settings: Settings) -> AsyncEngine:
    """The ORM engine. On SQLite every transaction is ``BEGIN IMMEDIATE``: writers queue on the database
    lock up front instead of failing when a read lock cannot be upgraded (SQLAlchemy's documented recipe)."""
    if settings.is_sqlite:
        engine = create_async_engine(sqlite_open_only(settings.database_url), connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
            _sqlite_pragmas(dbapi_connection, record)
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        # A write after the database dropped its connections (restart, failover) must not be a 500: a
        # checkout pings first. Writes are not the hot path; the reads keep their own connections.
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name()}},
    )


def create_read_engine(settings: Settings) -> AsyncEngine:
    """SQLite only: a separate engine whose connections read in autocommit, never taking the write lock."""
    # No overflow: an overflow connection is closed on return, and reopening one (an aiosqlite thread plus
    # the PRAGMAs) on every burst cost more than the read itself (benchmarks/). An in-memory database has
    # one shared connection (StaticPool) and takes no pool sizes.
    pool = {} if ":memory:" in settings.database_url else {"pool_size": 2 * settings.db_pool_size, "max_overflow": 0}
    engine = create_async_engine(
        sqlite_open_only(settings.database_url),
        connect_args={"timeout": 30},
        isolation_level="AUTOCOMMIT",
        **pool,
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine
