"""The hot runtime reads on SQLite: on the event loop's thread, never stalling it.

A hot read is a point lookup by primary key or unique index: some 10 µs of SQLite's work. Running it through
aiosqlite costs a thread hop and two loop wakeups (~150 µs here, benchmarks/), many times the query itself. So
each read first runs synchronously, on the loop's thread, on one connection of its own, with two guards that keep
the loop free whatever the database does:

- a deadline: SQLite calls a progress handler every few hundred virtual-machine steps, and past ``budget_s`` the
  handler interrupts the statement (``SQLITE_INTERRUPT``) — a slow query (a huge ``task_instance`` run) costs the
  loop at most the budget;
- no waiting for locks: the connection's busy timeout is zero, so a lock it cannot take (a checkpoint holding
  the WAL index, a writer in rollback-journal mode) fails at once with ``SQLITE_BUSY`` instead of sleeping.

Either way the read is run again on a worker thread, on a connection of that thread with a normal busy timeout
and no deadline, and its answer is the answer. Reads are single statements in autocommit, so running one twice
is harmless. Every connection is opened read-write without creating the file (``mode=rw``, as the engines do) and
then set ``query_only``: it can never write, nor take the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["LoopSqliteReads"]

_RETRIED: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_INTERRUPT})
"""What the loop's guards raise (and a lock another connection holds): answered by the thread instead."""
_STEPS: Final = 500
"""Virtual-machine steps between two calls of the progress handler: a point lookup finishes before the first."""
_THREAD_BUSY_TIMEOUT_S: Final = 30.0


def _open(uri: str, *, busy_timeout_s: float) -> sqlite3.Connection:
    connection = sqlite3.connect(
        uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False, cached_statements=64
    )
    connection.execute("PRAGMA query_only=ON")
    return connection


class LoopSqliteReads:
    """``Reads`` on SQLite: on the loop under a deadline, else on a worker thread (see the module's docstring)."""

    def __init__(self, uri: str, *, budget_s: float = 0.002, threads: int = 4) -> None:
        self._uri = uri
        self._budget_s = budget_s
        self._threads = threads
        self._loop_connection: sqlite3.Connection | None = None
        self._deadline = 0.0
        self._local = threading.local()
        self._thread_connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()  # the list above is appended to from the worker threads
        self._executor: ThreadPoolExecutor | None = None
        self.slow_reads = 0
        """Reads the loop handed to a thread (tests and benchmarks read it)."""

    async def start(self) -> None:
        # Connections open on first use, as the engines' pools do: a missing file is the readiness check's news.
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="tocsin-sqlite-read")

    async def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._guard:
            connections, self._thread_connections = self._thread_connections, []
        for connection in connections:
            connection.close()
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection = None

    def _past_deadline(self) -> bool:
        return time.perf_counter() > self._deadline

    def _connection(self) -> sqlite3.Connection:
        if self._loop_connection is None:
            connection = _open(self._uri, busy_timeout_s=0)
            connection.set_progress_handler(self._past_deadline, _STEPS)
            self._loop_connection = connection
        return self._loop_connection

    def _thread_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = _open(self._uri, busy_timeout_s=_THREAD_BUSY_TIMEOUT_S)
            with self._guard:
                self._thread_connections.append(connection)
        return connection

    def _on_thread(self, sql: str, params: Mapping[str, Any], many: bool) -> Any:
        cursor = self._thread_connection().execute(sql, params)
        try:
            return cursor.fetchall() if many else cursor.fetchone()
        finally:
            cursor.close()

    async def _run(self, sql: str, params: Mapping[str, Any], *, many: bool) -> Any:
        try:
            connection = self._connection()
            self._deadline = time.perf_counter() + self._budget_s
            cursor = connection.execute(sql, params)
            try:
                return cursor.fetchall() if many else cursor.fetchone()
            finally:
                cursor.close()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in _RETRIED:
                self._drop_loop_connection()  # the file may be gone or replaced: reopen on the next read
                raise
        self.slow_reads += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_thread, sql, params, many)

    def _drop_loop_connection(self) -> None:
        connection, self._loop_connection = self._loop_connection, None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await self._run(sql, params, many=False)
        return row

    async def fetch_all(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await self._run(sql, params, many=True)
        return rows
