"""The watch feed (issue 10, item 2): ``GET /api/v1/task-instances/changes`` as a page and as a long poll."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import insert
from tocsin_server.db import models as m
from tocsin_server.db.engine import create_write_engine
from tocsin_server.db.reads import create_reads
from tocsin_server.db.transactions import create_sessionmaker
from tocsin_server.errors import HistoryExpiredError
from tocsin_server.services import change_feed
from tocsin_server.services._time import utcnow
from tocsin_server.services.change_notices import ChangeNotices
from tocsin_server.services.retention import sweep

from tests.integration.orchestration import defer, register, sql

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]
FEED = "/api/v1/task-instances/changes"


def _page(client: Client, **params: Any) -> dict[str, Any]:
    response = client.get(FEED, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _versions(url: str) -> list[int]:
    return sorted(int(row[0]) for row in sql(url, "SELECT version FROM task_instance_change"))


def test__a_page_reads_every_change_after_a_version_in_order(admin: Client, settings: Any) -> None:
    empty = _page(admin)
    assert empty == {"changes": [], "version": 0, "wait_s": 0}
    ti_id, _ = defer(admin)
    logged = _versions(settings.database_url)
    assert len(logged) == 2  # none → running, running → deferred
    page = _page(admin, after=0)
    assert [c["version"] for c in page["changes"]] == logged
    assert [(c["previous_state"], c["state"], c["reason"]) for c in page["changes"]] == [
        ("none", "running", "changed"),
        ("running", "deferred", "deferred"),
    ]
    assert {c["task_instance_id"] for c in page["changes"]} == {ti_id}
    assert all(c["type"] == "change" for c in page["changes"])
    assert page["version"] == logged[-1]
    # Paging: one at a time, each page's version is the next after.
    first = _page(admin, after=0, limit=1)
    assert [c["version"] for c in first["changes"]] == logged[:1]
    assert first["version"] == logged[0]
    second = _page(admin, after=first["version"], limit=1)
    assert [c["version"] for c in second["changes"]] == logged[1:]
    # Without after: starts at the newest version, nothing to see.
    assert _page(admin) == {"changes": [], "version": logged[-1], "wait_s": 0}


def test__filters_pick_changes_and_the_version_moves_past_the_others(admin: Client, settings: Any) -> None:
    defer(admin, task_id="a", run_id="r1")
    defer(admin, task_id="b", run_id="r2")
    logged = _versions(settings.database_url)
    r2 = _page(admin, after=0, run_id="r2")
    assert {c["task_id"] for c in r2["changes"]} == {"b"}
    deferred = _page(admin, after=0, state="deferred")
    assert [c["task_id"] for c in deferred["changes"]] == ["a", "b"]
    assert _page(admin, after=0, dag_id="other") == {"changes": [], "version": logged[-1], "wait_s": 0}
    # Only r1's changes match, and r1's last change is older than r2's: the version still moves past r2's.
    r1 = _page(admin, after=0, run_id="r1")
    assert {c["task_id"] for c in r1["changes"]} == {"a"}
    assert r1["version"] == logged[-1]


def test__a_long_poll_wakes_when_another_request_commits_a_change(admin: Client, settings: Any) -> None:
    start = _page(admin)["version"]
    answers: list[tuple[float, dict[str, Any]]] = []

    def watch() -> None:
        began = time.monotonic()
        body = _page(admin, after=start, wait=20)
        answers.append((time.monotonic() - began, body))

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.5)  # the watcher is waiting (an answer before the change would hold no change: asserted below)
    ti_id, _ = defer(admin)
    watcher.join(timeout=25)
    assert answers, "the long poll did not answer"
    took, body = answers[0]
    assert body["changes"], body
    assert body["changes"][0]["task_instance_id"] == ti_id
    assert body["wait_s"] == 20
    assert took < 5, f"woke after {took:.1f} s, not at the change"


def test__a_long_poll_without_changes_waits_its_time_and_a_long_wait_is_clamped(admin: Client) -> None:
    began = time.monotonic()
    body = _page(admin, wait=0.3)
    assert time.monotonic() - began >= 0.3
    assert body["changes"] == [] and body["wait_s"] == 0.3
    defer(admin)
    clamped = _page(admin, after=0, wait=1000)  # changes there: at once, and the clamp is said
    assert clamped["wait_s"] == 30 and clamped["changes"]


def test__a_version_older_than_the_retained_history_is_410(admin: Client, settings: Any) -> None:
    defer(admin, task_id="a")
    defer(admin, task_id="b")
    logged = _versions(settings.database_url)
    sql(settings.database_url, "DELETE FROM task_instance_change WHERE version <= ?", logged[1])
    sql(settings.database_url, "INSERT INTO task_instance_change_horizon (id, version) VALUES (1, ?)", logged[1])
    response = admin.get(FEED, params={"after": 0})
    assert response.status_code == 410, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:tocsin:problem:history-expired"
    assert problem["oldest_version"] == logged[2]
    stream = admin.get(FEED, params={"after": logged[1] - 1}, headers={"Accept": "application/x-ndjson"})
    assert stream.status_code == 410
    # From the horizon on nothing is lost.
    assert [c["version"] for c in _page(admin, after=logged[1])["changes"]] == logged[2:]


def test__after_zero_on_a_log_never_trimmed_with_a_gap_is_no_410(admin: Client, settings: Any) -> None:
    defer(admin)
    first = _versions(settings.database_url)[0]
    sql(settings.database_url, "DELETE FROM task_instance_change WHERE version = ?", first)  # a gap, not retention
    assert _page(admin, after=0)["changes"]


@pytest.mark.parametrize(
    ("params", "headers", "name"),
    [
        ({"after": "-1"}, {}, "after"),
        ({"after": "x"}, {}, "after"),
        ({"after": "1.5"}, {}, "after"),
        ({"wait": "-1"}, {}, "wait"),
        ({"wait": "soon"}, {}, "wait"),
        ({"wait": "nan"}, {}, "wait"),
        ({"limit": "0"}, {}, "limit"),
        ({"state": "asleep"}, {}, "state"),
        ({"colour": "red"}, {}, "colour"),
        ({"after": ["1", "2"]}, {}, "after"),
        ({}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "-3"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "9" * 16}, "Last-Event-ID"),
    ],
)
def test__bad_input_is_400_naming_it(admin: Client, params: dict[str, Any], headers: dict[str, str], name: str) -> None:
    response = admin.get(FEED, params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert name.lower() in {e["key"].lower() for e in response.json()["errors"]}


def test__worker_or_admin_scope(client: Client, auth: Auth) -> None:
    assert client.get(FEED).status_code == 401
    assert client.get(FEED, headers=auth("triggerer")).status_code == 403
    assert client.get(FEED, headers=auth("worker")).status_code == 200
    assert client.get(FEED, headers=auth("admin")).status_code == 200
    _, job = register(client, auth)
    assert client.get(FEED, headers=job).status_code == 403


def test__older_versions_do_not_have_it(admin: Client) -> None:
    response = admin.get(FEED, headers={"Tocsin-API-Version": "2026-12-15"})
    assert response.status_code == 404


async def test__retention_deletes_a_prefix_of_versions_and_moves_the_horizon_the_feed_answers_410_by(
    settings: Any,
) -> None:
    """Changes past the window go oldest version first, never one behind a younger change (``changed_at`` is not
    quite in version order), and the newest version deleted becomes the line for 410."""
    windowed = replace(settings, retention_changes_s=86400.0)
    engine = create_write_engine(windowed)
    sessions = create_sessionmaker(engine)
    old, young = utcnow() - timedelta(days=3), utcnow()
    row = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1, "reason": "changed"}
    async with sessions() as session, session.begin():
        await session.execute(
            insert(m.TaskInstanceChange),
            [
                {
                    **row,
                    "task_instance_id": uuid.uuid4(),
                    "previous_state": "none",
                    "state": "running",
                    "changed_at": at,
                }
                for at in (old, old, young, old, young)  # the 4th is old but behind a young one: it stays
            ],
        )
    reads = create_reads(windowed)
    await reads.start()
    try:
        versions = [c.version for c in (await change_feed.read_page(reads, 0, 10, change_feed.Filters())).changes]
        swept = await sweep(sessions, windowed)
        assert swept.changes == 2
        kept = [c.version for c in (await change_feed.read_page(reads, versions[1], 10, change_feed.Filters())).changes]
        assert kept == versions[2:]
        with pytest.raises(HistoryExpiredError) as expired:
            await change_feed.read_page(reads, versions[1] - 1, 10, change_feed.Filters())
        assert expired.value.oldest_version == versions[2]
        # Everything goes once it is all old: the horizon says where the history ended.
        await sweep(sessions, replace(windowed, retention_changes_s=0.001))
        with pytest.raises(HistoryExpiredError) as gone:
            await change_feed.read_page(reads, versions[1], 10, change_feed.Filters())
        assert gone.value.oldest_version == versions[-1] + 1
        assert (await change_feed.read_page(reads, versions[-1], 10, change_feed.Filters())).changes == []
    finally:
        await reads.stop()
        await engine.dispose()


class _CountingReads:
    """The read path, counting the statements watchers send."""

    def __init__(self, reads: Any) -> None:
        self.reads = reads
        self.statements = 0

    async def fetch_one(self, sql: str, params: Any) -> Any:
        self.statements += 1
        return await self.reads.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Any) -> Any:
        self.statements += 1
        return await self.reads.fetch_all(sql, params)


async def test__a_hundred_idle_watchers_read_once_each_then_only_when_woken(settings: Any) -> None:
    reads = create_reads(settings)
    await reads.start()
    counting = _CountingReads(reads)
    notices = ChangeNotices()
    try:
        polls = [
            asyncio.create_task(change_feed.long_poll(counting, notices, 0, 10, change_feed.Filters(), 5.0))  # type: ignore[arg-type]
            for _ in range(100)
        ]
        deadline = time.monotonic() + 5
        while counting.statements < 300:  # three statements per read (change_feed's docstring)
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)  # idle: nobody reads again
        assert counting.statements == 300
        notices.notify()  # a commit: each re-reads once, finds nothing (no change was made) and waits on
        deadline = time.monotonic() + 5
        while counting.statements < 600:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        assert counting.statements == 600
        notices.close()  # the server stops: every long poll answers at once
        pages = await asyncio.wait_for(asyncio.gather(*polls), 5)
        assert all(page.changes == [] for page in pages)
    finally:
        await reads.stop()
