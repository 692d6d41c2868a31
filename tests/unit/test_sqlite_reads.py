"""The SQLite hot-read path: point reads on the loop's thread, anything slow or locked on a worker thread, the
loop never stalled (issue 11, item 1)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tocsin_server.db.engine import sqlite_file_uri
from tocsin_server.db.sqlite_reads import LoopSqliteReads

# A statement that runs for a long while in SQLite's own loop (no I/O): counts to 3 million.
SLOW = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "reads.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE variable (key TEXT PRIMARY KEY, value TEXT)")
    connection.executemany("INSERT INTO variable VALUES (?, ?)", [(f"k{i}", f"v{i}") for i in range(100)])
    connection.commit()
    connection.close()
    yield path


@pytest.fixture
async def reads(database: Path) -> AsyncIterator[LoopSqliteReads]:
    uri = sqlite_file_uri(f"sqlite+aiosqlite:///{database}")
    assert uri is not None
    reads = LoopSqliteReads(uri, budget_s=0.002)
    await reads.start()
    yield reads
    await reads.stop()


class LoopLag:
    """The longest time the loop went without running a 1 ms ticker."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test__a_point_read__runs_on_the_loop(reads: LoopSqliteReads) -> None:
    assert await reads.fetch_one("SELECT key, value FROM variable WHERE key = :key", {"key": "k7"}) == ("k7", "v7")
    assert await reads.fetch_one("SELECT key FROM variable WHERE key = :key", {"key": "nope"}) is None
    assert len(await reads.fetch_all("SELECT key FROM variable", {})) == 100
    assert reads.slow_reads == 0


async def test__a_slow_query__is_interrupted_on_the_loop_and_answered_by_a_thread(reads: LoopSqliteReads) -> None:
    async with LoopLag() as lag:
        started = time.perf_counter()
        assert await reads.fetch_one(SLOW, {}) == (3000000,)
        took = time.perf_counter() - started
    assert reads.slow_reads == 1
    # The query itself took far longer than any stall the loop saw: it ran off the loop after its 2 ms budget.
    assert took > 0.2, f"the query was too fast ({took:.3f} s) to show anything"
    assert lag.longest < took / 3, f"the loop stalled {lag.longest:.3f} s during a {took:.3f} s query"


async def test__a_locked_database__is_read_by_a_thread_once_the_lock_is_gone(database: Path) -> None:
    # In rollback-journal mode a writer's EXCLUSIVE lock shuts readers out (WAL would let them read on).
    setup = sqlite3.connect(database)
    setup.execute("PRAGMA journal_mode=DELETE")
    setup.close()
    uri = sqlite_file_uri(f"sqlite+aiosqlite:///{database}")
    assert uri is not None
    reads = LoopSqliteReads(uri)
    await reads.start()
    writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    try:
        async with LoopLag() as lag:
            released.start()
            started = time.perf_counter()
            row = await reads.fetch_one("SELECT value FROM variable WHERE key = :key", {"key": "k1"})
            took = time.perf_counter() - started
        assert row == ("v1",)
        assert reads.slow_reads == 1
        assert took >= 0.4, f"read in {took:.3f} s: the lock was not in its way"
        assert lag.longest < 0.1, f"the loop waited for the lock: stalled {lag.longest:.3f} s"
    finally:
        released.join()
        writer.close()
        await reads.stop()


async def test__the_read_connections__cannot_write(reads: LoopSqliteReads) -> None:
    with pytest.raises(sqlite3.OperationalError) as raised:
        await reads.fetch_one("DELETE FROM variable RETURNING key", {})
    assert raised.value.sqlite_errorcode == sqlite3.SQLITE_READONLY


async def test__a_missing_file__is_an_error_naming_cantopen_not_a_new_empty_database(tmp_path: Path) -> None:
    missing = tmp_path / "gone.db"
    uri = sqlite_file_uri(f"sqlite+aiosqlite:///{missing}")
    assert uri is not None
    reads = LoopSqliteReads(uri)
    await reads.start()
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            await reads.fetch_one("SELECT 1", {})
        assert raised.value.sqlite_errorcode == sqlite3.SQLITE_CANTOPEN
        assert not missing.exists()
    finally:
        await reads.stop()


def test__in_memory_and_uri_urls__keep_the_engine_path() -> None:
    assert sqlite_file_uri("sqlite+aiosqlite://") is None
    assert sqlite_file_uri("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_file_uri("sqlite+aiosqlite:///file:x.db?mode=ro&uri=true") is None
    assert sqlite_file_uri("sqlite+aiosqlite:///a b/t%.db") == "file:a%20b/t%25.db?mode=rw"
