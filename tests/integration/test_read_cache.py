"""The hot-read cache in one process: hits counted as database reads saved, read-your-writes on every write path,
the LRU bound, size 0, and the race of a slow read with a write (deterministic: the read is held by a hook).

PostgreSQL only where the cache is on; on SQLite the cache is off (services/read_cache.py, app.read_cache) and the
first test checks that every read goes to the database there."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.db.reads import GET_CONNECTION, GET_VARIABLE, GET_XCOM, Reads
from tocsin_server.services.read_cache import ReadCache
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import empty_database
from harness.live_server import LiveServer
from tests.integration.orchestration import defer, load, register

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]


class CountingReads:
    """The app's hot reads, counted per statement; ``hold`` parks the next read of one statement after it fetched."""

    def __init__(self, inner: Reads) -> None:
        self._inner = inner
        self.counts: Counter[str] = Counter()
        self._held: tuple[str, threading.Event, threading.Event] | None = None

    def hold(self, sql: str) -> tuple[threading.Event, threading.Event]:
        """(fetched, release): set when the read has its row / set it to let the read answer. Thread events: the
        test client runs the app on a loop of its own thread."""
        fetched, release = threading.Event(), threading.Event()
        self._held = (sql, fetched, release)
        return fetched, release

    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        self.counts[sql] += 1
        row = await self._inner.fetch_one(sql, params)
        if self._held is not None and self._held[0] == sql:
            _, fetched, release = self._held
            self._held = None
            fetched.set()
            while not release.is_set():
                await asyncio.sleep(0.005)
        return row

    async def fetch_all(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        return await self._inner.fetch_all(sql, params)

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()


def counted(app: Litestar) -> CountingReads:
    reads = CountingReads(app.state.reads)
    app.state.reads = reads  # the routes read it per request; the lifespan starts and stops the original
    return reads


def wait_serving(cache: ReadCache, deadline_s: float = 10.0) -> None:
    """The LISTEN connection is up (it connects in the background as the app starts)."""
    deadline = time.monotonic() + deadline_s
    while not cache.serving:
        assert time.monotonic() < deadline, "the read cache did not start serving"
        time.sleep(0.02)


@contextmanager
def app_client(settings: Settings, auth: Auth, **changes: Any) -> Iterator[tuple[Client, CountingReads, ReadCache]]:
    app = create_app(replace(settings, **changes), periodic_duties=False)
    reads = counted(app)
    with TestClient(app) as client:
        client.headers.update(auth("admin", "worker"))
        if settings.is_postgres and app.state.read_cache.size:
            wait_serving(app.state.read_cache)
        yield client, reads, app.state.read_cache


def settle(client: Client, cache: ReadCache) -> None:
    """Wait until this process heard the notices of the writes so far (its own too: one arriving after a read
    stored its answer takes it out again, and the counts would move). Notices arrive in commit order, so once a
    last write's notice is heard, every earlier one was."""
    if not cache.serving:
        return
    heard = threading.Event()
    invalidate = cache.invalidate

    def noting(keys: Any) -> None:
        invalidate(keys)
        if ("v", "settle") in keys:
            heard.set()

    cache.invalidate = noting  # type: ignore[method-assign]
    try:
        assert client.put("/execution/variables/settle", json={"value": "-"}).status_code == 200
        assert heard.wait(10), "the notice of the last write did not arrive"
    finally:
        del cache.invalidate


def needs_postgres(settings: Settings) -> None:
    if not settings.is_postgres:
        pytest.skip("the read cache is off on SQLite: its reads run on the loop (db/sqlite_reads.py)")


def seed(client: Client) -> None:
    assert client.put("/execution/variables/v", json={"value": "one"}).status_code == 200
    assert client.put("/api/v1/connections/c", json={"conn_type": "pg", "password": "pw-one"}).status_code == 200
    assert client.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": "r"}).status_code == 201
    assert client.post("/api/v1/task-instances", json={"dag_id": "d", "run_id": "r", "task_id": "t"}).status_code == 201
    assert client.post("/execution/xcoms/d/r/t/k", json={"value": {"n": 1}}).status_code == 201


def test__repeated_runtime_reads_are_served_from_the_cache_on_postgres_and_all_go_to_sqlite(
    settings: Settings, auth: Auth
) -> None:
    with app_client(settings, auth) as (client, reads, cache):
        seed(client)
        settle(client, cache)
        for _ in range(5):
            assert client.get("/execution/variables/v").json()["value"] == "one"
            assert client.get("/execution/connections/c").json()["password"] == "pw-one"
            assert client.get("/execution/xcoms/d/r/t/k").json()["value"] == {"n": 1}
            assert client.get("/execution/variables/missing").status_code == 404  # a 404 is cached too
        expected = 1 if settings.is_postgres else 5
        assert reads.counts[GET_VARIABLE] == 2 * expected  # v and missing
        assert reads.counts[GET_CONNECTION] == expected
        assert reads.counts[GET_XCOM] == expected


def test__every_write_path_is_read_back_at_once_by_the_process_that_wrote(settings: Settings, auth: Auth) -> None:
    with app_client(settings, auth) as (client, _, _):
        seed(client)
        ti_id, trigger_id = defer(client, task_id="t2", run_id="r")
        for _ in range(2):  # cached (on PostgreSQL) before each write
            assert client.get("/execution/variables/v").json()["value"] == "one"
            assert client.get("/execution/connections/c").json()["password"] == "pw-one"
            assert client.get("/execution/xcoms/d/r/t/k").json()["value"] == {"n": 1}
            assert client.get("/execution/xcoms/etl/r/t2/return_value").status_code == 404
        assert client.put("/execution/variables/v", json={"value": "two"}).status_code == 200
        assert client.get("/execution/variables/v").json()["value"] == "two"
        assert client.delete("/execution/variables/v").status_code == 204
        assert client.get("/execution/variables/v").status_code == 404
        assert client.put("/api/v1/connections/c", json={"conn_type": "pg", "password": "pw-two"}).status_code == 200
        assert client.get("/execution/connections/c").json()["password"] == "pw-two"
        assert client.delete("/api/v1/connections/c").status_code == 204
        assert client.get("/execution/connections/c").status_code == 404
        assert client.post("/execution/xcoms/d/r/t/k", json={"value": {"n": 2}}).status_code == 201
        assert client.get("/execution/xcoms/d/r/t/k").json()["value"] == {"n": 2}
        # a terminal event's XComs: written by the event's transaction, not by an XCom push
        _, headers = register(client, auth)
        assert trigger_id in load(client, headers)["trigger_ids"]
        ended = client.post(
            f"/execution/triggers/{trigger_id}/event",
            json={"event_id": "end", "event_type": "task_success", "payload": None, "xcoms": {"return_value": 7}},
            headers=headers,
        )
        assert ended.status_code == 200, ended.text
        assert client.get(f"/api/v1/task-instances/{ti_id}").json()["state"] == "success"
        assert client.get("/execution/xcoms/etl/r/t2/return_value").json()["value"] == 7


def test__the_cache_keeps_at_most_its_size_least_recently_used_out_first(settings: Settings, auth: Auth) -> None:
    needs_postgres(settings)
    with app_client(settings, auth, read_cache_size=3) as (client, reads, cache):
        for name in "abcd":
            assert client.put(f"/execution/variables/{name}", json={"value": name}).status_code == 200
        settle(client, cache)
        for name in "abc":
            client.get(f"/execution/variables/{name}")
        client.get("/execution/variables/a")  # a is now the most recently used: b goes first
        client.get("/execution/variables/d")
        assert len(cache) == 3
        before = reads.counts[GET_VARIABLE]
        for name in "acd":
            assert client.get(f"/execution/variables/{name}").json()["value"] == name
        assert reads.counts[GET_VARIABLE] == before, "a, c and d were all kept"
        assert client.get("/execution/variables/b").json()["value"] == "b"
        assert reads.counts[GET_VARIABLE] == before + 1, "b was evicted"


def test__size_0_turns_the_cache_off(settings: Settings, auth: Auth) -> None:
    needs_postgres(settings)
    with app_client(settings, auth, read_cache_size=0) as (client, reads, cache):
        assert client.put("/execution/variables/v", json={"value": "one"}).status_code == 200
        for _ in range(4):
            assert client.get("/execution/variables/v").json()["value"] == "one"
        assert reads.counts[GET_VARIABLE] == 4
        assert (len(cache), cache.serving) == (0, False)


def _race(writer: Client, reader: Client, reader_app: Litestar) -> None:
    """A read on ``reader`` fetches the old row, is held while ``writer`` writes and ``reader`` hears of the
    write, then answers; the next read on ``reader`` must be the new value, not the held read's old one."""
    cache: ReadCache = reader_app.state.read_cache
    reads = counted(reader_app)
    heard = threading.Event()
    invalidate = cache.invalidate

    def noting(keys: Any) -> None:  # what the LISTEN connection passes on (through read_invalidation)
        invalidate(keys)
        heard.set()

    cache.invalidate = noting  # type: ignore[method-assign]
    assert writer.put("/execution/variables/v", json={"value": "old"}).status_code == 200
    assert heard.wait(10), "that write's notice did not arrive"
    fetched, release = reads.hold(GET_VARIABLE)
    answers: list[Any] = []
    slow = threading.Thread(target=lambda: answers.append(reader.get("/execution/variables/v")))
    slow.start()
    try:
        assert fetched.wait(10), "the slow read did not start"  # it has the old row
        heard.clear()
        assert writer.put("/execution/variables/v", json={"value": "new"}).status_code == 200
        assert heard.wait(10), "the reader did not hear of the write"  # while its read was in flight
    finally:
        release.set()
        slow.join(10)
    assert answers[0].json()["value"] == "old"  # it read before the write committed: that answer is fair
    assert reader.get("/execution/variables/v").json()["value"] == "new"
    assert reader.get("/execution/variables/v").json()["value"] == "new"
    assert reads.counts[GET_VARIABLE] == 2, "the read after the write went to the database, the next was a hit"


def test__a_slow_read_overlapping_a_write_here_does_not_store_the_old_value(settings: Settings, auth: Auth) -> None:
    needs_postgres(settings)
    app = create_app(settings, periodic_duties=False)
    with TestClient(app) as client:
        client.headers.update(auth("admin", "worker"))
        wait_serving(app.state.read_cache)
        _race(client, client, app)


def test__a_slow_read_overlapping_a_write_on_another_replica_does_not_store_the_old_value(
    settings: Settings, auth: Auth
) -> None:
    needs_postgres(settings)
    writer_app = create_app(settings, periodic_duties=False)
    reader_app = create_app(settings, periodic_duties=False)
    with TestClient(writer_app) as writer, TestClient(reader_app) as reader:
        for client in (writer, reader):
            client.headers.update(auth("admin", "worker"))
        wait_serving(reader_app.state.read_cache)
        _race(writer, reader, reader_app)


def test__a_write_outside_the_server__is_forgotten_after_the_documented_notice(
    live: LiveServer, authority: TokenAuthority
) -> None:
    """docs/operations.md: after SQL typed into psql (here the harness's TRUNCATE), `pg_notify('tocsin_read_cache',
    '*')` makes every server forget its cache; without it the real server would go on serving the deleted row."""
    if not live.env["TOCSIN_DATABASE_URL"].startswith("postgresql"):
        pytest.skip("the read cache is PostgreSQL's")
    headers = {"Authorization": f"Bearer {authority.issue('t', ['admin', 'worker'], 600)}"}
    url = f"{live.url}/execution/variables/outside"
    assert httpx.put(url, json={"value": "v"}, headers=headers).status_code in (200, 201)
    assert httpx.get(url, headers=headers).json()["value"] == "v"  # cached now
    empty_database(live.env["TOCSIN_DATABASE_URL"])  # TRUNCATE, and the notice in its transaction
    assert httpx.get(url, headers=headers).status_code == 404
