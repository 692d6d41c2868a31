"""The task-instance change log (issue 10, item 1): every transition logged in its own transaction, with versions
in commit order, so a reader resuming after a version never misses a change nor sees one twice."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.db import models as m
from tocsin_server.db.engine import create_write_engine
from tocsin_server.db.reads import Reads, create_reads
from tocsin_server.db.transactions import create_sessionmaker
from tocsin_server.services import change_feed, changes
from tocsin_server.services._time import utcnow

from tests.integration.orchestration import defer, eventually, load, register, sql

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]


def _log(url: str, ti_id: str | None = None) -> list[tuple[Any, ...]]:
    rows = sql(url, "SELECT version, task_instance_id, previous_state, state, reason FROM task_instance_change")
    rows.sort(key=lambda row: int(row[0]))
    return [row for row in rows if ti_id is None or _uuid(row[1]) == ti_id]


def _uuid(stored: Any) -> str:
    """A stored task-instance id as text: 16 bytes on SQLite, a native uuid on PostgreSQL."""
    return str(uuid.UUID(bytes=stored) if isinstance(stored, bytes) else uuid.UUID(str(stored)))


def _transitions(url: str, ti_id: str) -> list[tuple[str, str, str]]:
    return [(row[2], row[3], row[4]) for row in _log(url, ti_id)]


def _event(admin: Client, trigger_id: int, headers: dict[str, str], **body: Any) -> None:
    response = admin.post(f"/execution/triggers/{trigger_id}/event", json=body, headers=headers)
    assert response.status_code == 200, response.text


DEFERRED = [("none", "running", "changed"), ("running", "deferred", "deferred")]


def test__each_way_out_of_a_deferral_is_logged_with_its_reason(admin: Client, auth: Auth, settings: Settings) -> None:
    resumed, resumed_trigger = defer(admin, task_id="resumed")
    ended, ended_trigger = defer(admin, task_id="ended")
    failed, failed_trigger = defer(admin, task_id="failed")
    _, headers = register(admin, auth)
    load(admin, headers)

    _event(admin, resumed_trigger, headers, event_id="e1", payload={"ok": True})
    _event(admin, resumed_trigger, headers, event_id="e1", payload={"ok": True})  # a duplicate changes nothing
    _event(admin, ended_trigger, headers, event_id="e2", payload=None, event_type="task_success")
    failure = {"error": "ValueError: nope"}
    assert admin.post(f"/execution/triggers/{failed_trigger}/failure", json=failure, headers=headers).status_code == 200

    url = settings.database_url
    assert _transitions(url, resumed) == [*DEFERRED, ("deferred", "scheduled", "resumed")]
    assert _transitions(url, ended) == [*DEFERRED, ("deferred", "success", "ended")]
    assert _transitions(url, failed) == [*DEFERRED, ("deferred", "scheduled", "trigger-failed")]
    versions = [int(row[0]) for row in _log(url)]
    assert versions == sorted(set(versions))


def test__a_timeout_by_the_periodic_duty_is_logged(settings: Settings, auth: Auth) -> None:
    app = create_app(replace(settings, timeout_check_interval_s=0.1, cleanup_interval_s=3600))
    with TestClient(app) as client:
        client.headers.update(auth("admin", "worker"))
        ti_id, _ = defer(client, timeout=0)
        eventually(lambda: len(_transitions(settings.database_url, ti_id)) == 3)
    assert _transitions(settings.database_url, ti_id) == [*DEFERRED, ("deferred", "scheduled", "timed-out")]


def test__a_refused_change_and_a_rolled_back_transaction_log_nothing(admin: Client, settings: Settings) -> None:
    ti_id, _ = defer(admin)
    before = _log(settings.database_url)
    refused = admin.patch(f"/execution/task-instances/{ti_id}/state", json={"state": "running"})
    assert refused.status_code == 409
    assert _log(settings.database_url) == before


# --- directly on the services' sessions: rollbacks, savepoints, and commit order under concurrency ----------------


@pytest.fixture
async def reads(settings: Settings) -> AsyncIterator[Reads]:
    """The server's own read path, which the watch feed reads the log through."""
    reads = create_reads(settings)
    await reads.start()
    yield reads
    await reads.stop()


async def _read_after(reads: Reads, after: int, limit: int, **filters: str) -> list[changes.Change]:
    return (await change_feed.read_page(reads, after, limit, change_feed.Filters(**filters))).changes


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_write_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    changes.track(sessionmaker)
    yield sessionmaker
    await engine.dispose()


async def _task_instances(sessions: async_sessionmaker[AsyncSession], count: int) -> list[uuid.UUID]:
    now = utcnow()
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    ids = [uuid.uuid4() for _ in range(count)]
    async with sessions() as session, session.begin():
        await session.execute(
            insert(m.DagRun), [{"dag_id": "d", "run_id": run_id, "state": "running", "created_at": now}]
        )
        rows = [
            {"id": i, "dag_id": "d", "run_id": run_id, "task_id": f"t{n}", "map_index": -1, "try_number": 1}
            for n, i in enumerate(ids)
        ]
        await session.execute(insert(m.TaskInstance), [{**row, "state": "running", "updated_at": now} for row in rows])
    return ids


async def _move(session: AsyncSession, ti_id: uuid.UUID, state: str) -> None:
    ti = await session.scalar(select(m.TaskInstance).where(m.TaskInstance.id == ti_id).with_for_update())
    assert ti is not None
    ti.state = state


async def test__rollback_and_savepoint_rollback_drop_their_changes(
    sessions: async_sessionmaker[AsyncSession], reads: Reads
) -> None:
    kept, rolled_back, in_savepoint = await _task_instances(sessions, 3)
    async with sessions() as session, session.begin():
        await _move(session, rolled_back, "failed")
        await session.flush()
        await session.rollback()
    async with sessions() as session, session.begin():
        await _move(session, kept, "success")
        savepoint = await session.begin_nested()
        await _move(session, in_savepoint, "failed")
        await session.flush()
        await savepoint.rollback()
    logged = await _read_after(reads, 0, 100)
    assert [(c.task_instance_id, c.previous_state, c.state, c.reason) for c in logged] == [
        (kept, "running", "success", "changed")
    ]


async def test__filters_and_limits(sessions: async_sessionmaker[AsyncSession], reads: Reads) -> None:
    first, second = await _task_instances(sessions, 2)
    for ti_id, state in ((first, "deferred"), (second, "success"), (first, "scheduled")):
        async with sessions() as session, session.begin():
            await _move(session, ti_id, state)
    every = await _read_after(reads, 0, 100)
    assert [c.reason for c in every] == ["deferred", "changed", "resumed"]
    assert [c.version for c in await _read_after(reads, every[0].version, 1)] == [every[1].version]
    assert [c.state for c in await _read_after(reads, 0, 100, state="scheduled")] == ["scheduled"]
    assert await _read_after(reads, 0, 100, run_id="no-such-run") == []
    assert await change_feed.oldest_version(reads) == every[0].version
    assert await change_feed.latest_version(reads) == every[-1].version


@pytest.fixture
def held_before_commit(sessions: async_sessionmaker[AsyncSession]) -> Iterator[dict[str, Any]]:
    """A hook that runs after the change log's rows are inserted and before COMMIT: it can hold a transaction
    there (``gates``) or delay it (``delays``), widening the window in which a sequence's order and the commit
    order could differ."""
    control: dict[str, Any] = {"gates": {}, "delays": False}
    session_class: type[Session] = sessions.kw["sync_session_class"]

    def hold(session: Session) -> None:
        gate = control["gates"].get(session.info.get("name"))
        if gate is not None:
            gate[0].set()
            await_only(gate[1].wait())
        if control["delays"]:
            await_only(asyncio.sleep(random.uniform(0, 0.01)))

    event.listen(session_class, "before_commit", hold)  # after changes._write: listeners run in order
    yield control
    event.remove(session_class, "before_commit", hold)


async def _waiting_on_advisory_lock(url: str) -> bool:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        return bool(
            await connection.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
    finally:
        await connection.close()


async def test__postgres__a_later_writer_waits_so_a_reader_never_passes_an_uncommitted_version(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reads: Reads,
    held_before_commit: dict[str, Any],
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time (BEGIN IMMEDIATE): there is no order to get wrong")
    first, second = await _task_instances(sessions, 2)
    reached, release = asyncio.Event(), asyncio.Event()
    held_before_commit["gates"]["A"] = (reached, release)

    async def transition(name: str, ti_id: uuid.UUID) -> None:
        async with sessions() as session:
            session.sync_session.info["name"] = name
            async with session.begin():
                await _move(session, ti_id, "deferred")

    a = asyncio.create_task(transition("A", first))
    await asyncio.wait_for(reached.wait(), 10)  # A drew its version and has not committed
    b = asyncio.create_task(transition("B", second))
    deadline = asyncio.get_running_loop().time() + 10
    while not await _waiting_on_advisory_lock(settings.database_url):
        assert asyncio.get_running_loop().time() < deadline, "B did not wait for A's commit"
        await asyncio.sleep(0.02)
    assert await _read_after(reads, 0, 100) == []  # neither is visible: nothing to pass
    assert not b.done()
    release.set()
    await asyncio.gather(a, b)
    logged = await _read_after(reads, 0, 100)
    assert [c.task_instance_id for c in logged] == [first, second]


async def test__concurrent_writers_and_readers__every_reader_sees_every_change_once_in_order(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reads: Reads,
    held_before_commit: dict[str, Any],
) -> None:
    writers, per_writer, readers = 8, 25, 4
    held_before_commit["delays"] = True  # each commit waits 0-10 ms after its versions were drawn
    ids = await _task_instances(sessions, writers)
    done = asyncio.Event()

    async def write(ti_id: uuid.UUID) -> None:
        for n in range(per_writer):
            async with sessions() as session, session.begin():
                await _move(session, ti_id, "deferred" if n % 2 == 0 else "scheduled")

    async def read() -> list[int]:
        seen: list[int] = []
        cursor = 0
        while True:
            finished = done.is_set()  # read once more after the writers are done: then everything is visible
            batch = await _read_after(reads, cursor, 50)
            seen += [c.version for c in batch]
            if batch:
                cursor = batch[-1].version
            elif finished:
                return seen
            else:
                await asyncio.sleep(0.001)

    reading = [asyncio.create_task(read()) for _ in range(readers)]
    await asyncio.gather(*(write(ti_id) for ti_id in ids))
    done.set()
    seen_by_each = await asyncio.gather(*reading)
    logged = [c.version for c in await _read_after(reads, 0, writers * per_writer + 1)]
    assert len(logged) == writers * per_writer, (len(seen_by_each[0]), settings.database_url)
    for seen in seen_by_each:
        assert seen == logged  # nothing skipped, nothing twice, in version order
