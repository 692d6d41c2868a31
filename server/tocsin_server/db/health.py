"""Is the database usable right now? One log line when it goes away and one when it is back.

A request that fails with a database error is answered 503 (with ``Retry-After``) when a probe of the
database confirms it is unavailable or not the migrated one, and 500 otherwise: the probe decides, never the
error's text. While it is away a background probe watches for its return, so the server recovers by itself.

SQLite: the file the server opened is remembered. When it is deleted or replaced while the server runs, pooled
connections would keep reading the deleted file while new ones create an empty one ("no such table"), so
every transaction first checks that the file is still the one the server started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tocsin_server.db.diagnose import Target, explain
from tocsin_server.db.migrate import head_revision, known_revisions
from tocsin_server.db.reads import GET_MIGRATION
from tocsin_server.errors import ServiceError

if TYPE_CHECKING:
    from litestar.types import Scope

    from tocsin_server.config import Settings
    from tocsin_server.db.reads import Reads

_log = logging.getLogger("tocsin.server.database")
RETRY_AFTER_S: Final = 2
PROBE_INTERVAL_S: Final = 0.5
_SCOPE_KEY: Final = "tocsin.database_unavailable"


class DatabaseUnavailableError(ServiceError):
    """The database cannot be used right now."""


class NotReadyError(Exception):
    """The server is not ready; the message says why and what to do."""


async def check_migrated(reads: Reads, target: Target) -> str:
    """The database answers and its schema is at the latest migration: its revision, or NotReadyError."""
    try:
        row = await reads.fetch_one(GET_MIGRATION, {})
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"; explain() names it
        reason = explain(exc, target) or (
            f"the database cannot be read or has no migration table ({type(exc).__name__}): run `tocsin db upgrade`"
        )
        raise NotReadyError(reason) from None
    revision = None if row is None else str(row[0])
    head = head_revision()
    # A revision this release does not know was written by a newer release's `tocsin db upgrade`: during a rolling
    # upgrade the old replicas keep serving on the migrated schema (migrations only add), so that is ready.
    if revision != head and (revision is None or revision in known_revisions()):
        msg = f"the database schema is at {revision or 'no revision'}, not {head}: run `tocsin db upgrade`"
        raise NotReadyError(msg)
    return revision


def database_error_types() -> tuple[type[Exception], ...]:
    """Exceptions that may mean the database is away: SQLAlchemy's, the socket's, and the drivers' own (the hot
    read path uses asyncpg, or the ``sqlite3`` module, directly)."""
    types: list[type[Exception]] = [SQLAlchemyError, OSError, sqlite3.OperationalError]
    with contextlib.suppress(ImportError):
        import asyncpg  # noqa: PLC0415 - the PostgreSQL extra is optional

        types += [asyncpg.PostgresError, asyncpg.InterfaceError]
    return tuple(types)


class DatabaseHealth:
    def __init__(self, settings: Settings, reads: Reads) -> None:
        self._target = Target(make_url(settings.database_url))
        self._dialect = "postgresql" if settings.is_postgres else "sqlite"
        self._reads = reads
        self._identity: tuple[int, int] | None = None
        self._down: str | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._error_types = database_error_types()

    @property
    def down(self) -> str | None:
        """Why the database is unavailable, or None."""
        return self._down

    def start(self) -> None:
        path = self._target.sqlite_path
        if path is not None:
            with contextlib.suppress(OSError):
                stat = path.stat()
                self._identity = (stat.st_dev, stat.st_ino)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    def _file_problem(self) -> str | None:
        path = self._target.sqlite_path
        if path is None or self._identity is None:
            return None
        try:
            stat = os.stat(path)  # noqa: PTH116 - one syscall per transaction, no Path object
        except FileNotFoundError:
            return (
                f"the SQLite file {path} was deleted while the server ran: restore it and restart the server, "
                "or run `tocsin db upgrade` to make a new one and restart"
            )
        except OSError as exc:
            return f"the SQLite file {path} cannot be checked ({exc.strerror or type(exc).__name__})"
        if (stat.st_dev, stat.st_ino) != self._identity:
            return f"the SQLite file {path} was replaced while the server ran: restart the server to use the new file"
        return None

    def guard(self) -> None:
        """Before a transaction: refuse at once when the SQLite file is no longer the one the server opened."""
        if (problem := self._file_problem()) is not None:
            self._mark_down(problem)
            raise DatabaseUnavailableError(problem)

    async def ready(self) -> tuple[str, str]:
        """The dialect and migration of a usable database, or NotReadyError saying what is wrong."""
        if (problem := self._file_problem()) is not None:
            self._mark_down(problem)
            raise NotReadyError(problem)
        try:
            revision = await check_migrated(self._reads, self._target)
        except NotReadyError as exc:
            self._mark_down(str(exc))
            raise
        self._mark_up()
        return self._dialect, revision

    async def probe(self) -> str | None:
        """Why the database cannot be used now, or None when it can."""
        try:
            await self.ready()
        except NotReadyError as exc:
            return str(exc)
        return None

    async def after_exception(self, exc: BaseException, scope: Scope) -> None:
        """Litestar's after-exception hook (async, before the sync exception handlers run): for a database
        error, probe the database and leave the verdict in the request's scope for ``unavailable_reason``."""
        if isinstance(exc, self._error_types) and not isinstance(exc, ServiceError):
            try:
                reason = self._down or await self.probe()
            except Exception:  # noqa: BLE001 - a hook that raised would replace the answer; the error is logged
                _log.exception("the database probe after a failed request failed")
                reason = None
            scope.setdefault("state", {})[_SCOPE_KEY] = reason

    def explain(self, exc: BaseException) -> str | None:
        return explain(exc, self._target)

    def _mark_down(self, reason: str) -> None:
        if self._down is None:
            _log.warning("database unavailable: %s; answering 503 until it is back", reason)
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        self._down = reason

    def _mark_up(self) -> None:
        if self._down is not None:
            self._down = None
            _log.warning("database available again; serving requests")

    async def _watch(self) -> None:
        """Probe while the database is away, so recovery does not wait for the next request."""
        while self._down is not None:
            await asyncio.sleep(PROBE_INTERVAL_S)
            await self.probe()


def unavailable_reason(scope: Scope) -> str | None:
    """The verdict ``after_exception`` left for this request: why the database is unavailable, or None."""
    state: dict[str, Any] = scope.get("state", {})
    reason = state.get(_SCOPE_KEY)
    return reason if isinstance(reason, str) else None
