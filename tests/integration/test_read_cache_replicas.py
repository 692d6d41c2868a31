"""The read cache across replicas (issue 11, item 2): two server processes on one PostgreSQL database; after a
write's response on one, the other never serves the old value more than 100 ms later — over many rounds of every
cached kind, and across a dropped LISTEN connection (the cache is bypassed and emptied until it is back)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import postgres_database
from harness.live_server import LiveServer, live_server
from tests.conftest import SECRET
from tests.integration.orchestration import sql

BOUND_S = 0.1
"""The issue's bound: a read that starts this long after a write's response gets the new value."""
ROUNDS = 48
TOKEN = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue("cache", ["admin", "worker"], 3600)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
LISTENERS = (
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'tocsin change notices' AND datname = current_database()"
)
KILL_LISTENERS = f"SELECT pg_terminate_backend(pid) FROM ({LISTENERS}) AS listeners"


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    """(database URL, client of replica one, client of replica two)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the read cache is PostgreSQL's (off on SQLite: one process per database)")
    with postgres_database() as url, ExitStack() as stack:
        servers: list[LiveServer] = [
            stack.enter_context(live_server(url, SECRET, tmp_path / f"{name}.log")) for name in ("one", "two")
        ]
        one, two = (
            stack.enter_context(httpx.Client(base_url=server.url, headers=HEADERS, timeout=10)) for server in servers
        )
        _wait(lambda: len(sql(url, LISTENERS)) == 2, "both replicas LISTEN")
        assert one.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": "r"}).status_code == 201
        created = one.post("/api/v1/task-instances", json={"dag_id": "d", "run_id": "r", "task_id": "t"})
        assert created.status_code == 201
        yield url, one, two


def _wait(check: Callable[[], bool], what: str, deadline_s: float = 15.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"not within {deadline_s} s: {what}"
        time.sleep(0.02)


class Kind:
    """One cached kind: how to write a value through a replica and read it back from one (None: absent)."""

    def __init__(self, name: str, write: Callable[[httpx.Client, Any], None], read: Callable[[httpx.Client], Any]):
        self.name, self.write, self.read = name, write, read


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 300, response.text
    return response


def _value(response: httpx.Response, field: str) -> Any:
    if response.status_code == 404:
        return None
    return _ok(response).json()[field]


def _write_variable(client: httpx.Client, value: Any) -> None:
    if value is None:
        _ok(client.delete("/execution/variables/v"))
    else:
        _ok(client.put("/execution/variables/v", json={"value": value}))


KINDS = (
    Kind("variable", _write_variable, lambda c: _value(c.get("/execution/variables/v"), "value")),
    Kind(
        "connection",
        lambda c, value: _ok(c.put("/api/v1/connections/c", json={"conn_type": "pg", "password": value})),
        lambda c: _value(c.get("/execution/connections/c"), "password"),
    ),
    Kind(
        "xcom",
        lambda c, value: _ok(c.post("/execution/xcoms/d/r/t/k", json={"value": value})),
        lambda c: _value(c.get("/execution/xcoms/d/r/t/k"), "value"),
    ),
)


def _staleness(kind: Kind, reader: httpx.Client, new: Any, written_at: float) -> float:
    """Read until the new value shows; no read that started past the bound may answer the old one. Returns the
    seconds from the write's response to the start of the first read that got the new value."""
    while True:
        started = time.monotonic()
        seen = kind.read(reader)
        if seen == new:
            for _ in range(3):
                assert kind.read(reader) == new, f"{kind.name}: the old value came back"
            return started - written_at
        late = started - written_at
        assert late < BOUND_S, f"{kind.name}: the old value {seen!r} was served {late * 1000:.0f} ms after the write"


def _metric(client: httpx.Client, name: str, labels: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _hits(client: httpx.Client) -> float:
    """Runtime reads answered from the cache so far: the runtime read requests less those sent to the database."""
    requests = sum(
        _metric(client, "tocsin_http_requests_total", f'operation="{operation}",status="{status}"')
        for operation in ("getVariable", "getConnection", "getXCom")
        for status in (200, 404)
    )
    misses = sum(_metric(client, "tocsin_read_cache_misses_total", f'reason="{r}"') for r in ("miss", "off"))
    return requests - misses


def _warm(kind: Kind, reader: httpx.Client, current: Any) -> None:
    for _ in range(3):
        assert kind.read(reader) == current


def test__after_a_write_the_other_replica_never_serves_the_old_value_100_ms_later(
    replicas: tuple[str, httpx.Client, httpx.Client],
) -> None:
    _, one, two = replicas
    current: dict[str, Any] = {}
    for kind in KINDS:
        kind.write(one, "v0")
        current[kind.name] = "v0"
    hits_before = _hits(one) + _hits(two)
    worst: dict[str, float] = {}
    for round_ in range(ROUNDS):
        kind = KINDS[round_ % len(KINDS)]
        writer, reader = (one, two) if round_ % 2 == 0 else (two, one)
        _warm(kind, reader, current[kind.name])  # the reader holds the old value
        new = None if kind.name == "variable" and round_ % 4 == 0 else f"v{round_ + 1}"  # deletes too
        kind.write(writer, new)
        written_at = time.monotonic()
        assert kind.read(writer) == new  # the writer reads its own write at once
        worst[kind.name] = max(worst.get(kind.name, 0.0), _staleness(kind, reader, new, written_at))
        current[kind.name] = new
    assert _hits(one) + _hits(two) - hits_before >= ROUNDS * 2, "the replicas did not serve from their caches"
    print("worst staleness, ms:", {name: round(seconds * 1000, 1) for name, seconds in worst.items()})


def test__while_the_listen_connection_is_down_the_cache_is_bypassed_and_emptied_then_serves_again(
    replicas: tuple[str, httpx.Client, httpx.Client],
) -> None:
    url, one, two = replicas
    kind = KINDS[0]
    kind.write(one, "before")
    for round_ in range(3):
        _warm(kind, two, "before" if round_ == 0 else f"after-{round_ - 1}")
        assert len(sql(url, KILL_LISTENERS)) == 2  # what a PostgreSQL restart does to them
        kind.write(one, f"during-{round_}")  # no replica LISTENs: nobody hears this write
        written_at = time.monotonic()
        if sql(url, LISTENERS):
            pytest.fail("a listener was back before the write: it does not prove the outage (machine too slow?)")
        _staleness(kind, two, f"during-{round_}", written_at)
        # back: the listeners reconnect (every second) and the cache serves again, without the pre-outage value
        _wait(lambda: len(sql(url, LISTENERS)) == 2, "both replicas LISTEN again")
        during, before = f"during-{round_}", _hits(two)
        _wait(lambda: kind.read(two) == during and _hits(two) > before, "the cache serves again")  # noqa: B023
        kind.write(one, f"after-{round_}")  # and hears of writes again
        _staleness(kind, two, f"after-{round_}", time.monotonic())
