"""What is wrong with the database, in one line with its fix, decided by exception type and SQLSTATE.

Used at start (``tocsin api-server``, ``db``, ``standalone`` check before they serve or migrate) and while
running (/ready, and the 503 answers while PostgreSQL is away). Never by reading a driver's English message.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy.exc import StatementError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import URL

VARIABLE: Final = "TOCSIN_DATABASE_URL"
_SQLITE_CANTOPEN: Final = 14


@dataclass(frozen=True, slots=True)
class Target:
    """Where the configured URL points, for messages."""

    url: URL

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def where(self) -> str:
        return f"{self.url.host or 'localhost'}:{self.url.port or 5432}"

    @property
    def sqlite_path(self) -> Path | None:
        database = self.url.database
        if not self.is_sqlite or not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the driver error SQLAlchemy wraps, and what caused each, innermost last."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, StatementError):
            orig = current.orig
            pending.append(orig if isinstance(orig, BaseException) else None)
        pending.extend((current.__cause__, current.__context__))


def _postgres(exc: BaseException, target: Target) -> str | None:
    try:
        import asyncpg  # noqa: PLC0415 - the PostgreSQL extra is optional
    except ImportError:  # pragma: no cover - without asyncpg there are no asyncpg errors
        return None
    url, where, errors = target.url, target.where, asyncpg.exceptions
    user = f" -U {url.username}" if url.username else ""
    host = f" -h {url.host} -p {url.port or 5432}" if url.host else ""
    reasons: list[tuple[tuple[type[BaseException], ...], str]] = [
        (
            (errors.InvalidCatalogNameError,),  # SQLSTATE 3D000
            f"PostgreSQL at {where} has no database {url.database!r}: "
            f"create it with `createdb{host}{user} {url.database}`, then run `tocsin db upgrade`",
        ),
        (
            (errors.InvalidAuthorizationSpecificationError,),  # 28000, 28P01
            f"PostgreSQL at {where} refused user {url.username!r}: fix the user or password in the URL",
        ),
        (
            (errors.CannotConnectNowError, errors.AdminShutdownError, errors.CrashShutdownError),  # 57P0x
            f"PostgreSQL at {where} is starting up or shutting down; it answers again when it is up",
        ),
        (
            (errors.TooManyConnectionsError,),  # 53300
            f"PostgreSQL at {where} has no free connections: lower TOCSIN_DB_POOL_SIZE or raise max_connections",
        ),
        (
            (errors.PostgresConnectionError, errors.InterfaceError),  # 08xxx, or a connection asyncpg closed
            f"the connection to PostgreSQL at {where} was lost",
        ),
        (
            (errors.UndefinedTableError,),  # 42P01
            f"the PostgreSQL database {url.database!r} is not migrated: run `tocsin db upgrade`",
        ),
    ]
    return next((reason for types, reason in reasons if isinstance(exc, types)), None)


def _network(exc: BaseException, target: Target) -> str | None:
    if isinstance(exc, socket.gaierror):
        return f"the host {target.url.host!r} cannot be resolved: fix the host in the URL"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing is listening at {target.where}: start PostgreSQL there, or fix the host and port in the URL"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"PostgreSQL at {target.where} does not answer (timed out)"
    if isinstance(exc, ConnectionError):
        return f"the connection to PostgreSQL at {target.where} was lost"
    if isinstance(exc, OSError):
        return f"PostgreSQL at {target.where} cannot be reached ({exc.strerror or type(exc).__name__})"
    return None


def _sqlite(exc: BaseException, target: Target) -> str | None:
    if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode == _SQLITE_CANTOPEN:
        path = target.sqlite_path
        if path is not None and not path.parent.is_dir():
            return missing_folder(path)
        if path is not None and not path.exists():
            return f"the SQLite file {path} does not exist: run `tocsin db upgrade` to create and migrate it"
        return f"the SQLite file {target.url.database} cannot be opened: check that it is a writable file"
    return None


def missing_folder(path: Path) -> str:
    return f"the folder {path.parent} of the SQLite file does not exist: create it (mkdir -p {path.parent})"


def explain(exc: BaseException, target: Target) -> str | None:
    """One line for an error that means the database cannot be used as configured; None for any other error."""
    for cause in causes(exc):
        if (reason := _postgres(cause, target) or _sqlite(cause, target) or _network(cause, target)) is not None:
            return reason
    return None
