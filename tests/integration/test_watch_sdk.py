"""The SDK's ``watch_task_instances`` against a real ``tocsin api-server`` on both backends (issue 10, item 3).

What the watch yields is compared with the change-log table itself: every change once, in version order, none
missing — also when the server process is SIGKILLed mid-stream and started again on the same database and port.
What retrying cannot fix (410 history expired, 401, 403) is raised at once, and the server saw one request.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from tocsin_client import (
    AsyncClient,
    Backoff,
    Client,
    ForbiddenError,
    HistoryExpiredError,
    TocsinError,
    UnauthorizedError,
)
from tocsin_client.generated.models import (
    ChangeBookmark,
    DagRunBody,
    RunningStateUpdate,
    SuccessStateUpdate,
    TaskInstanceBody,
    TaskInstanceChange,
)
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import postgres_database, sqlite_database
from harness.live_server import LiveServer, free_port, wait_until_healthy
from tests.conftest import SECRET
from tests.integration.orchestration import sql
from tests.support.metrics import scrape

FAST = Backoff(initial_s=0.05, max_s=0.5)
LogRow = tuple[int, UUID, str, str, str]


def _uuid(value: Any) -> UUID:
    """A stored task-instance id: 16 bytes on SQLite, a native uuid on PostgreSQL."""
    return UUID(bytes=value) if isinstance(value, bytes) else UUID(str(value))


def change_log(url: str, run_id: str, after: int = 0) -> list[LogRow]:
    """The change-log table's rows of one run after ``after``, in version order: what a watch must yield."""
    rows = sql(
        url,
        "SELECT version, task_instance_id, previous_state, state, reason FROM task_instance_change "
        "WHERE run_id = ? AND version > ?",
        run_id,
        after,
    )
    return sorted((int(v), _uuid(ti), str(p), str(s), str(r)) for v, ti, p, s, r in rows)


def as_rows(changes: list[TaskInstanceChange]) -> list[LogRow]:
    return [(c.version, c.task_instance_id, c.previous_state.value, c.state.value, c.reason.value) for c in changes]


def newest_version(client: Client) -> int:
    """The newest version now: the page without ``after`` starts there."""
    return client.watch_task_instance_changes(limit=1).version


def poll_until(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {deadline_s} s"
        time.sleep(0.05)


async def until(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {deadline_s} s"
        await asyncio.sleep(0.05)


async def run_tasks(client: AsyncClient, run_id: str, tasks: range) -> None:
    """Each task instance created, then moved to running and to success: two changes each."""
    for n in tasks:
        ti = await client.create_task_instance(TaskInstanceBody(dag_id="etl", run_id=run_id, task_id=f"t{n:03d}"))
        await client.update_task_instance_state(ti.id, RunningStateUpdate())
        await client.update_task_instance_state(ti.id, SuccessStateUpdate())


def test__sync_watch__yields_each_change_of_its_run_once_in_order__as_the_change_log_has_them(
    live: LiveServer, authority: TokenAuthority
) -> None:
    url = live.env["TOCSIN_DATABASE_URL"]
    token = authority.issue("engine", ["admin", "worker"], 600)
    seen: list[TaskInstanceChange] = []
    bookmarks: list[ChangeBookmark] = []
    failure: list[BaseException] = []
    with Client(live.url, token=token) as client:
        start = newest_version(client)
        watch = client.watch_task_instances(after=start, run_id="r1", bookmarks=True, backoff=FAST)

        def consume() -> None:
            try:
                for item in watch:
                    (bookmarks if isinstance(item, ChangeBookmark) else seen).append(item)  # type: ignore[arg-type]
            except BaseException as exc:  # the test thread reports it
                failure.append(exc)

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()

        async def write() -> None:
            async with AsyncClient(live.url, token=token) as writer:
                # the stream is open (its first line is a bookmark) before anything is written
                await until(lambda: bool(bookmarks) or bool(failure), 30, "the opening bookmark")
                for run_id in ("r1", "r2"):
                    await writer.create_dag_run(DagRunBody(dag_id="etl", run_id=run_id))
                await asyncio.gather(run_tasks(writer, "r1", range(8)), run_tasks(writer, "r2", range(8)))
                expected = len(await asyncio.to_thread(change_log, url, "r1", start))
                await until(lambda: len(seen) >= expected or bool(failure), 30, f"{expected} changes watched")

        asyncio.run(write())
        watch.close()  # from this thread, while the consumer's thread is blocked reading the stream
        consumer.join(10)
        assert not consumer.is_alive(), "close() from another thread did not end the iteration"
    assert not failure, failure
    assert bookmarks[0].version == start  # the stream starts right after the version asked for
    logged = change_log(url, "r1", start)
    assert len(logged) == 16  # running and success of 8 task instances; r2's are filtered out
    assert as_rows(seen) == logged
    assert {c.run_id for c in seen} == {"r1"}


@dataclass
class RestartableServer:
    """``tocsin api-server`` processes started one after the other on one database, always on the same port."""

    database_url: str
    folder: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> subprocess.Popen[bytes]:
        log = self.folder / f"server-{len(self.processes)}.log"
        env = {**os.environ, "TOCSIN_DATABASE_URL": self.database_url, "TOCSIN_JWT_SECRET": SECRET, **self.extra_env}
        command = [sys.executable, "-m", "tocsin_cli", "api-server", "--host", "127.0.0.1", "--port", str(self.port)]
        with log.open("wb") as sink:
            process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        self.processes.append(process)
        wait_until_healthy(self.url, process, log)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def restartable_server(database_url: str, tmp_path: Path, **env: str) -> Iterator[RestartableServer]:
    """A database of its own, of ``database_url``'s backend (the session's is shared with in-process tests)."""
    with postgres_database() if database_url.startswith("postgresql") else sqlite_database(tmp_path) as url:
        server = RestartableServer(url, tmp_path, extra_env=env)
        try:
            yield server
        finally:
            server.stop()


def test__async_watch__server_sigkilled_mid_stream_and_restarted__resumes_with_nothing_lost_or_twice(
    database_url: str, authority: TokenAuthority, tmp_path: Path
) -> None:
    token = authority.issue("engine", ["admin", "worker"], 600)
    with restartable_server(database_url, tmp_path) as server:
        first = server.start()
        base, url = server.url, server.database_url
        with Client(base, token=token) as sync_client:
            begin = newest_version(sync_client)

        async def scenario() -> list[TaskInstanceChange]:
            seen: list[TaskInstanceChange] = []
            async with (
                AsyncClient(base, token=token) as engine,
                AsyncClient(base, token=token) as writer,
                engine.watch_task_instances(after=begin, run_id="r1", backoff=FAST, give_up_after_s=60) as watch,
            ):

                async def consume() -> None:
                    async for change in watch:
                        seen.append(change)

                consumer = asyncio.create_task(consume())
                await writer.create_dag_run(DagRunBody(dag_id="etl", run_id="r1"))
                phase_one = asyncio.create_task(run_tasks(writer, "r1", range(30)))
                await until(lambda: len(seen) >= 6 or consumer.done(), 30, "the first changes watched")
                first.kill()  # SIGKILL while the writer writes and the watcher streams
                first.wait()
                with pytest.raises(TocsinError):
                    await phase_one  # the writer's next call finds no server
                await asyncio.to_thread(server.start)  # the same database, the same port
                await run_tasks(writer, "r1", range(100, 110))
                expected = len(await asyncio.to_thread(change_log, url, "r1", begin))
                await until(lambda: len(seen) >= expected or consumer.done(), 60, f"{expected} changes watched")
                assert not consumer.done(), consumer.exception()
                consumer.cancel()
            return seen

        seen = asyncio.run(scenario())
        logged = change_log(url, "r1", begin)
    assert as_rows(seen) == logged  # nothing lost, nothing twice, in order
    tasks = {c.task_id for c in seen}
    assert "t000" in tasks and "t100" in tasks and "t109" in tasks  # changes from before and after the restart


def _requests(server: LiveServer | RestartableServer, status: str) -> float:
    return scrape(f"{server.url}/metrics").value(
        "tocsin_http_requests_total", operation="watchTaskInstanceChanges", status=status
    )


def age_changes(url: str, up_to_version: int, days: int = 30) -> None:
    """Move the changes up to a version ``days`` into the past, as if they were that old."""
    if url.startswith("postgresql"):
        sql(
            url,
            f"UPDATE task_instance_change SET changed_at = changed_at - interval '{days} days' WHERE version <= ?",
            up_to_version,
        )
        return
    for version, stamp in sql(
        url, "SELECT version, changed_at FROM task_instance_change WHERE version <= ?", up_to_version
    ):
        aged = datetime.fromisoformat(str(stamp)) - timedelta(days=days)
        sql(url, "UPDATE task_instance_change SET changed_at = ? WHERE version = ?", aged.isoformat(sep=" "), version)


def test__resume_point_older_than_the_retained_history__raises_history_expired_with_the_oldest_version(
    database_url: str, authority: TokenAuthority, tmp_path: Path
) -> None:
    token = authority.issue("engine", ["admin", "worker"], 600)
    # the server's own retention duty, every second, with the default 7-day window for changes
    with restartable_server(database_url, tmp_path, TOCSIN_RETENTION_INTERVAL_S="1") as server:
        server.start()
        url = server.database_url

        async def write() -> None:
            async with AsyncClient(server.url, token=token) as writer:
                await writer.create_dag_run(DagRunBody(dag_id="etl", run_id="r1"))
                await run_tasks(writer, "r1", range(3))

        asyncio.run(write())
        versions = [row[0] for row in change_log(url, "r1")]
        assert len(versions) == 6
        age_changes(url, versions[2])
        with Client(server.url, token=token) as client:

            def expired() -> bool:
                return [row[0] for row in change_log(url, "r1")] == versions[3:]

            poll_until(expired, 30, "retention deleting the three aged changes")
            before = _requests(server, "410")
            started = time.monotonic()
            with pytest.raises(HistoryExpiredError) as raised:
                next(iter(client.watch_task_instances(after=versions[0], backoff=FAST)))
            assert time.monotonic() - started < 5  # raised, not retried with backoff
            with pytest.raises(HistoryExpiredError) as page:  # the page form raises the same error
                client.watch_task_instance_changes(after=versions[0])
            after = _requests(server, "410")
            # from just before the oldest kept change, the rest of the history is there, in order
            rest = client.watch_task_instance_changes(after=versions[3] - 1, run_id="r1")
        assert raised.value.status == 410
        assert raised.value.kind == "history-expired"
        assert raised.value.oldest_version == versions[3] == page.value.oldest_version
        assert not raised.value.transient
        assert after - before == 2  # one request each: nothing retried
        assert [change.version for change in rest.changes] == versions[3:]


@pytest.mark.parametrize(("scopes", "error"), [(["triggerer"], ForbiddenError), (None, UnauthorizedError)])
def test__token_without_worker_or_admin_scope__raises_at_once_and_is_not_retried(
    live: LiveServer, authority: TokenAuthority, scopes: list[str] | None, error: type[TocsinError]
) -> None:
    token = authority.issue("engine", scopes, 600) if scopes else "not-a-token"
    status = "403" if scopes else "401"
    before = _requests(live, status)

    async def watch_once() -> None:
        async with AsyncClient(live.url, token=token) as client:
            async for _ in client.watch_task_instances(backoff=FAST):
                pytest.fail("a refused token yielded a change")

    started = time.monotonic()
    with pytest.raises(error) as raised:
        asyncio.run(watch_once())
    assert time.monotonic() - started < 5
    assert not raised.value.transient
    assert _requests(live, status) - before == 1


def test__stream_cap_reached__the_watch_retries_the_429_and_opens_once_a_stream_closes(
    database_url: str, authority: TokenAuthority, tmp_path: Path
) -> None:
    token = authority.issue("engine", ["worker"], 600)
    with restartable_server(database_url, tmp_path, TOCSIN_WATCH_MAX_STREAMS="1") as server:
        server.start()
        refused = lambda: scrape(f"{server.url}/metrics").value(  # noqa: E731
            "tocsin_http_requests_total", operation="watchTaskInstanceChanges", status="429"
        )

        async def scenario() -> None:
            async with AsyncClient(server.url, token=token) as client:
                first = client.watch_task_instances(bookmarks=True, backoff=FAST)
                assert isinstance(await anext(first), ChangeBookmark)  # holds the server's only stream slot
                second = client.watch_task_instances(bookmarks=True, backoff=FAST, give_up_after_s=60)
                opened = asyncio.create_task(anext(second))
                await until(lambda: refused() >= 2 or opened.done(), 30, "the second watch refused twice (429)")
                assert not opened.done(), "the second stream opened beyond TOCSIN_WATCH_MAX_STREAMS=1"
                await first.aclose()
                assert isinstance(await asyncio.wait_for(opened, 30), ChangeBookmark)
                await second.aclose()

        asyncio.run(scenario())
