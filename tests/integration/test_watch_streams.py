"""The watch feed's streams through a real server: SSE and NDJSON with bookmarks, Last-Event-ID resume, the cap on
open streams, the end of every stream at shutdown, resuming without loss across a killed server, and wakeups
that cross replicas on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import empty_database, postgres_database, sqlite_database
from harness.live_server import LiveServer, live_server
from tests.conftest import SECRET
from tests.integration.orchestration import sql
from tests.support.processes import is_gone

FEED = "/api/v1/task-instances/changes"
BOOKMARK_S = 0.5
TOKEN = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue("watch", ["admin", "worker"], 3600)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
SSE = {**HEADERS, "Accept": "text/event-stream"}
NDJSON = {**HEADERS, "Accept": "application/x-ndjson"}
ENV = {"TOCSIN_WATCH_BOOKMARK_S": str(BOOKMARK_S), "TOCSIN_WATCH_MAX_STREAMS": "3"}


@pytest.fixture(scope="module")
def watch_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the backend under test for these servers alone (they run periodic duties)."""
    if database_url.startswith("postgresql"):
        with postgres_database() as url:
            yield url
    else:
        with sqlite_database(tmp_path_factory.mktemp("watch-sqlite")) as url:
            yield url


@pytest.fixture(scope="module")
def watch_server(watch_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("watch") / "server.log"
    with live_server(watch_database, SECRET, log, extra_env=ENV) as running:
        yield running


@pytest.fixture
def server(watch_server: LiveServer) -> LiveServer:
    empty_database(watch_server.env["TOCSIN_DATABASE_URL"])
    return watch_server


def make_change(url: str, run_id: str = "r1") -> str:
    """A new task instance moved to running: one change in the log. Returns its id."""
    with httpx.Client(base_url=url, headers=HEADERS, timeout=10) as client:
        client.post("/api/v1/dag-runs", json={"dag_id": "etl", "run_id": run_id})  # 409 once it exists
        created = client.post(
            "/api/v1/task-instances", json={"dag_id": "etl", "run_id": run_id, "task_id": str(uuid.uuid4())}
        )
        assert created.status_code == 201, created.text
        ti_id: str = created.json()["id"]
        moved = client.patch(f"/execution/task-instances/{ti_id}/state", json={"state": "running"})
        assert moved.status_code == 200, moved.text
        return ti_id


def logged_versions(database_url: str) -> list[int]:
    return sorted(int(row[0]) for row in sql(database_url, "SELECT version FROM task_instance_change"))


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse SSE lines into {event, id, data} events."""
    event: dict[str, Any] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
            continue
        field, _, value = line.partition(": ")
        event[field] = json.loads(value) if field == "data" else value


def test__sse_starts_with_a_bookmark_then_sends_changes_as_they_commit_and_bookmarks_while_idle(
    server: LiveServer,
) -> None:
    make_change(server.url)
    start = logged_versions(server.env["TOCSIN_DATABASE_URL"])[-1]
    with httpx.stream("GET", f"{server.url}{FEED}", headers=SSE, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())
        first = next(events)
        assert first == {"event": "bookmark", "id": str(start), "data": {"type": "bookmark", "version": start}}
        ti_id = make_change(server.url)
        change = next(events)
        assert change["event"] == "change"
        assert change["data"]["task_instance_id"] == ti_id
        assert change["id"] == str(change["data"]["version"])
        assert change["data"]["version"] > start
        began = time.monotonic()
        idle = next(events)  # nothing changes: a bookmark keeps the watcher's place
        assert idle["event"] == "bookmark"
        assert idle["data"]["version"] == change["data"]["version"]
        assert time.monotonic() - began < BOOKMARK_S + 5


def test__ndjson_resumes_from_last_event_id_and_after_wins_over_it(server: LiveServer) -> None:
    for _ in range(3):
        make_change(server.url)
    versions = logged_versions(server.env["TOCSIN_DATABASE_URL"])
    resume = {**NDJSON, "Last-Event-ID": str(versions[0])}
    with httpx.stream("GET", f"{server.url}{FEED}", headers=resume, timeout=10) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = (json.loads(line) for line in response.iter_lines() if line)
        assert next(lines) == {"type": "bookmark", "version": versions[0]}
        seen = [next(lines) for _ in versions[1:]]
    assert [item["version"] for item in seen] == versions[1:]
    assert {item["type"] for item in seen} == {"change"}
    with httpx.stream(
        "GET", f"{server.url}{FEED}", params={"after": versions[1]}, headers=resume, timeout=10
    ) as response:
        lines = (json.loads(line) for line in response.iter_lines() if line)
        assert next(lines) == {"type": "bookmark", "version": versions[1]}
        assert next(lines)["version"] == versions[2]


def test__streams_past_the_cap_get_429_and_a_closed_stream_frees_its_place(server: LiveServer) -> None:
    with ExitStack() as streams:
        lines = []  # kept: a line iterator dropped half-read closes its connection
        for _ in range(3):
            response = streams.enter_context(httpx.stream("GET", f"{server.url}{FEED}", headers=NDJSON, timeout=10))
            assert response.status_code == 200
            lines.append(response.iter_lines())
            next(lines[-1])  # the first bookmark: the stream is open on the server
        refused = httpx.get(f"{server.url}{FEED}", headers=NDJSON, timeout=10)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert httpx.get(f"{server.url}{FEED}", headers=HEADERS, timeout=10).status_code == 200  # pages are not capped
    # The three clients went away: their places are given back (the server notices the disconnects).
    deadline = time.monotonic() + 10
    while True:
        with httpx.stream("GET", f"{server.url}{FEED}", headers=NDJSON, timeout=10) as response:
            if response.status_code == 200:
                break
        assert time.monotonic() < deadline, "a closed stream kept its place"
        time.sleep(0.1)


def _read_stream(url: str, params: dict[str, Any], seen: list[dict[str, Any]], ended: threading.Event) -> None:
    """NDJSON items into ``seen`` until the stream ends (cleanly or by a dropped connection)."""
    try:
        with httpx.stream("GET", f"{url}{FEED}", params=params, headers=NDJSON, timeout=30) as response:
            for line in response.iter_lines():
                if line:
                    seen.append(json.loads(line))
    except httpx.HTTPError:
        pass
    finally:
        ended.set()


@contextmanager
def _own_server(database_url: str, log: Path) -> Iterator[LiveServer]:
    with live_server(database_url, SECRET, log, extra_env=ENV) as running:
        yield running


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test__a_stopping_server_ends_its_streams_and_long_polls_and_stops_promptly(
    watch_database: str, tmp_path: Path, stop: signal.Signals
) -> None:
    empty_database(watch_database)
    with _own_server(watch_database, tmp_path / "server.log") as server:
        seen: list[dict[str, Any]] = []
        ended = threading.Event()
        watcher = threading.Thread(target=_read_stream, args=(server.url, {}, seen, ended))
        watcher.start()
        polled: list[httpx.Response] = []
        poller = threading.Thread(
            target=lambda: polled.append(
                httpx.get(f"{server.url}{FEED}", params={"wait": 30}, headers=HEADERS, timeout=40)
            )
        )
        poller.start()
        deadline = time.monotonic() + 10
        while not seen:
            assert time.monotonic() < deadline, "the stream did not start"
            time.sleep(0.05)
        time.sleep(0.3)  # the long poll is waiting too
        began = time.monotonic()
        os.kill(server.pid, stop)
        assert ended.wait(10), "the stream did not end when the server stopped"
        poller.join(10)
        deadline = time.monotonic() + 10
        while not is_gone(server.pid):
            assert time.monotonic() < deadline, "the server did not stop with a watcher connected"
            time.sleep(0.05)
        assert time.monotonic() - began < 5
        assert polled and polled[0].status_code == 200 and polled[0].json()["changes"] == []
        watcher.join(5)
    assert seen[0]["type"] == "bookmark"
    assert "Traceback" not in server.log.read_text()


def test__a_watcher_resumes_across_a_killed_server_without_loss_or_duplicate(
    watch_database: str, tmp_path: Path
) -> None:
    empty_database(watch_database)
    seen: list[dict[str, Any]] = []
    stop_writing = threading.Event()

    def write(url: str) -> None:
        while not stop_writing.is_set():
            try:
                make_change(url)
            except (httpx.HTTPError, AssertionError):
                time.sleep(0.05)  # the server is down: try again

    with _own_server(watch_database, tmp_path / "first.log") as first:
        ended = threading.Event()
        watcher = threading.Thread(target=_read_stream, args=(first.url, {"after": 0}, seen, ended))
        watcher.start()
        writer = threading.Thread(target=write, args=(first.url,))
        writer.start()
        deadline = time.monotonic() + 20
        while sum(item["type"] == "change" for item in seen) < 10:
            assert time.monotonic() < deadline, "no changes streamed"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)  # mid-stream, mid-write
        assert ended.wait(10)
        stop_writing.set()
        writer.join(15)
    last = max(item["version"] for item in seen)
    stop_writing.clear()
    with _own_server(watch_database, tmp_path / "second.log") as second:
        writer = threading.Thread(target=write, args=(second.url,))
        writer.start()
        time.sleep(0.5)
        stop_writing.set()
        writer.join(15)
        expected = logged_versions(watch_database)
        resumed: list[dict[str, Any]] = []
        ended = threading.Event()
        watcher = threading.Thread(target=_read_stream, args=(second.url, {"after": last}, resumed, ended))
        watcher.start()
        deadline = time.monotonic() + 20
        while not resumed or max(item["version"] for item in resumed) < expected[-1]:
            assert time.monotonic() < deadline, f"the resumed watch did not reach version {expected[-1]}"
            time.sleep(0.05)
    changes = [item["version"] for item in [*seen, *resumed] if item["type"] == "change"]
    assert changes == expected, "a change was lost or seen twice"


def test__a_watcher_on_one_replica_is_woken_by_a_change_through_another(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("one SQLite database has one server process: its wakeups are in-process")
    with postgres_database() as url, ExitStack() as stack:
        one = stack.enter_context(live_server(url, SECRET, tmp_path / "one.log", extra_env=ENV))
        other = stack.enter_context(live_server(url, SECRET, tmp_path / "other.log", extra_env=ENV))
        woke_after = _woken_after(one, other)
        assert woke_after < 2, f"woken {woke_after:.2f} s after the commit: not by its notice"


def _woken_after(one: LiveServer, other: LiveServer) -> float:
    """A long poll (wait 20 s) on ``one``; a change through ``other``: seconds from the commit to the answer."""
    start = httpx.get(f"{one.url}{FEED}", headers=HEADERS, timeout=10).json()["version"]
    answers: list[httpx.Response] = []
    poller = threading.Thread(
        target=lambda: answers.append(
            httpx.get(f"{one.url}{FEED}", params={"after": start, "wait": 20}, headers=HEADERS, timeout=30)
        )
    )
    poller.start()
    time.sleep(0.5)  # waiting on the first replica
    committed = time.monotonic()
    ti_id = make_change(other.url)
    poller.join(25)
    assert answers, "the long poll did not answer"
    assert [c["task_instance_id"] for c in answers[0].json()["changes"]] == [ti_id]
    return time.monotonic() - committed


def test__after_the_listen_connection_is_lost_watchers_still_wake(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    with postgres_database() as url, ExitStack() as stack:
        one = stack.enter_context(live_server(url, SECRET, tmp_path / "one.log", extra_env=ENV))
        other = stack.enter_context(live_server(url, SECRET, tmp_path / "other.log", extra_env=ENV))
        # What a PostgreSQL restart does to the listeners' connections: while they are gone, watchers poll.
        killed = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tocsin change notices'"
            " AND datname = current_database()"
        )
        assert len(sql(url, killed)) == 2
        assert _woken_after(one, other) < 5
        time.sleep(2)  # the listeners reconnect (they retry every second): notices wake at once again
        assert _woken_after(one, other) < 2
