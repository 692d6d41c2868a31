"""Fire-to-resume through the watch feed beside polling, and what idle watchers cost the server (issue 10, item 5).

    PYTHONPATH=. .venv/bin/python benchmarks/watch_latency.py [--tasks 1000] [--db sqlite|postgres]
        [--idle-watchers 100] [--idle-seconds 30] [--skip-idle]

A real ``tocsin api-server`` (one uvicorn worker) and a real ``tocsin triggerer`` (one runner) on a fresh database.
Rounds on the same processes, one after the other (``--rounds``), each ``tocsin demo``'s flow: N task instances
deferred on ``DateTimeTrigger``s due at the same moment T, then

- **watch alone** (what the demo does): the engine reads ``watch_task_instances`` (NDJSON stream); a task counts as
  resumed when its change into ``scheduled`` reaches the client;
- **poll alone**, the baseline: a 50 ms poll of the admin task-instance list
  (``GET /api/v1/task-instances?state=scheduled``), the first time each task is listed ``scheduled``;
- **both** on the same fires at once: the fairest comparison, since how long the triggerer and the server take to
  get the events in varies from round to round on a shared machine (the poll's load is then on the server too).

Each round also shows, from the change log, ``changed_at`` minus T: when the server made the change (stamped as it
applies the event batch; the commit follows), which splits the figure into the triggerer + event submission part
and the apply + commit + feed part. Then **the feed alone**: single state changes through the API, one at a time,
timed from sending the write to its answer and to its change reaching a watching engine.

Then the cost of idle watchers: the server process's CPU time (``/proc``, utime + stime, it and its children)
over ``--idle-seconds`` with ``--idle-watchers`` NDJSON streams open and nothing changing (bookmarks only), beside
the same window with no stream open — both with the idle triggerer heartbeating and claiming, which the
difference cancels out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import asyncpg
import httpx
from tocsin_client import AsyncClient
from tocsin_client.demo import DemoResult, Observe, percentile, run_demo
from tocsin_client.generated.models import ChangeBookmark, DagRunBody, RunningStateUpdate, TaskInstanceBody
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import postgres_database, sqlite_database
from harness.live_server import free_port, wait_until_healthy

SECRET = "bench-secret-" + "w" * 40
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants (uvicorn may run the app in a child)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)
        pending.extend(int(child) for child in children)
    return total


def changed_at(database_url: str, run_id: str) -> list[datetime]:
    """``changed_at`` of the run's changes into ``scheduled``, from the change log."""
    sql = "SELECT changed_at FROM task_instance_change WHERE run_id = $1 AND state = 'scheduled'"
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.split("///", 1)[1]) as connection:
            rows = connection.execute(sql.replace("$1", "?"), (run_id,)).fetchall()
    else:

        async def fetch() -> list[tuple[object, ...]]:
            connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
            try:
                return [tuple(row) for row in await connection.fetch(sql, run_id)]
            finally:
                await connection.close()

        rows = asyncio.run(fetch())
    values = []
    for (value,) in rows:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        values.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return values


def stats(values_s: list[float]) -> str:
    ms = [value * 1000 for value in values_s]
    return f"{percentile(ms, 0.5):,.0f} | {percentile(ms, 0.99):,.0f} | {max(ms):,.0f}"


@contextmanager
def processes(database_url: str, tasks: int, folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """An API server and a triggerer on ``database_url``; stopped (SIGTERM, then SIGKILL) on the way out."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_JWT_SECRET": SECRET,
        "TOCSIN_LOG_LEVEL": "WARNING",
    }
    cli = [sys.executable, "-m", "tocsin_cli"]
    started: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        server_log = stack.enter_context((folder / "server.log").open("wb"))
        triggerer_log = stack.enter_context((folder / "triggerer.log").open("wb"))
        try:
            server = subprocess.Popen(
                [*cli, "api-server", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
            started.append(server)
            wait_until_healthy(url, server, folder / "server.log", 60)
            token = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue("bench", ["triggerer"], 7200)
            started.append(
                subprocess.Popen(
                    [*cli, "triggerer", "--api-url", url, "--capacity", str(max(1000, tasks * 2))],
                    env={**env, "TOCSIN_TOKEN": token},
                    stdout=triggerer_log,
                    stderr=subprocess.STDOUT,
                )
            )
            yield url, server
        finally:
            for process in reversed(started):  # the triggerer first: it completes its job through the server
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()


async def one_round(url: str, token: str, tasks: int, delay_s: float, observe: str) -> tuple[DemoResult, str]:
    async with AsyncClient(url, token=token) as client:
        how = cast("Observe", observe)
        result = await run_demo(client, tasks, delay_s=delay_s, timeout_s=120, out=sys.stderr, observe=how)
        runs = await client.list_dag_runs(dag_id="tocsin_demo", limit=1000)
    run_id = max(run.run_id for run in runs.dag_runs)  # the demo's run ids sort by their creation time
    return result, run_id


async def feed_alone(url: str, token: str, writes: int) -> tuple[list[float], list[float]]:
    """``writes`` state changes made one at a time through the API while a watch reads the feed: seconds from
    sending each write to its answer (the write committed), and from sending it to its change on the watch."""
    run_id = f"feed__{time.time_ns()}"
    sent: dict[str, float] = {}
    answered: list[float] = []
    seen: list[float] = []
    async with AsyncClient(url, token=token) as writer, AsyncClient(url, token=token) as engine:
        await writer.create_dag_run(DagRunBody(dag_id="feed_alone", run_id=run_id))
        ids = [
            (
                await writer.create_task_instance(TaskInstanceBody(dag_id="feed_alone", run_id=run_id, task_id=f"t{n}"))
            ).id
            for n in range(writes)
        ]
        after = (await engine.watch_task_instance_changes(limit=1)).version
        done = asyncio.Event()

        async def watch() -> None:
            async with engine.watch_task_instances(after=after, run_id=run_id) as changes:
                async for change in changes:
                    seen.append(time.perf_counter() - sent[change.task_id])
                    if len(seen) == writes:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        for n, ti_id in enumerate(ids):
            sent[f"t{n}"] = started = time.perf_counter()
            await writer.update_task_instance_state(ti_id, RunningStateUpdate())
            answered.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)  # one change at a time: each is seen alone, not in a batch
        await asyncio.wait_for(done.wait(), 60)
        await watcher
    return answered, seen


async def idle_cost(url: str, token: str, server_pid: int, watchers: int, seconds: float) -> tuple[float, float, int]:
    """Server CPU (% of a core) over ``seconds`` with no stream, then with ``watchers`` idle streams; bookmarks seen."""
    before = cpu_seconds(server_pid)
    await asyncio.sleep(seconds)
    without = (cpu_seconds(server_pid) - before) / seconds * 100
    limits = httpx.Limits(max_connections=watchers + 10, max_keepalive_connections=watchers + 10)
    bookmarks = [0] * watchers
    async with AsyncClient(url, token=token, limits=limits) as client:

        async def watch(index: int) -> None:
            async with client.watch_task_instances(bookmarks=True) as items:
                async for item in items:
                    if isinstance(item, ChangeBookmark):
                        bookmarks[index] += 1

        streams = [asyncio.create_task(watch(n)) for n in range(watchers)]
        deadline = time.monotonic() + 60
        while min(bookmarks) == 0:  # every stream open: its first line is a bookmark
            if time.monotonic() > deadline or any(stream.done() for stream in streams):
                raise SystemExit(f"only {sum(1 for b in bookmarks if b)} of {watchers} watch streams opened")
            await asyncio.sleep(0.05)
        opened = sum(bookmarks)
        before = cpu_seconds(server_pid)
        await asyncio.sleep(seconds)
        with_watchers = (cpu_seconds(server_pid) - before) / seconds * 100
        idle_bookmarks = sum(bookmarks) - opened
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return without, with_watchers, idle_bookmarks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--delay", type=float, default=None, help="seconds from the first deferral to T")
    parser.add_argument("--idle-watchers", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--rounds", default="watch,poll,both", help="watch alone, poll alone, both on the same fires")
    parser.add_argument("--feed-writes", type=int, default=200, help="single writes timed through the feed alone")
    args = parser.parse_args()
    delay_s = args.delay if args.delay is not None else max(10.0, args.tasks / 150)  # deferring must end before T
    folder = Path(tempfile.mkdtemp(prefix="tocsin-watch-latency-"))
    token = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue("bench", ["admin", "worker"], 7200)
    with ExitStack() as stack:
        database = postgres_database() if args.db == "postgres" else sqlite_database(folder)
        database_url = stack.enter_context(database)
        url, server = stack.enter_context(processes(database_url, args.tasks, folder))
        rounds: dict[str, tuple[DemoResult, list[float]]] = {}
        for name in args.rounds.split(","):
            result, run_id = asyncio.run(one_round(url, token, args.tasks, delay_s, name))
            applied = [(at - result.fire_at).total_seconds() for at in changed_at(database_url, run_id)]
            rounds[name] = result, applied
        answered, on_feed = asyncio.run(feed_alone(url, token, args.feed_writes))
        idle = None
        if not args.skip_idle:
            idle = asyncio.run(idle_cost(url, token, server.pid, args.idle_watchers, args.idle_seconds))
    print(
        f"# watch feed vs polling — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {args.db}; server, triggerer, database and client on the same host\n"
    )
    print(f"| round | measure (N = {args.tasks:,} fires at one moment T, ms after T) | p50 | p99 | max |")
    print("|---|---|---:|---:|---:|")
    for name, (result, applied) in rounds.items():
        label = {"watch": "watch alone", "poll": "poll alone", "both": "watch + poll, same fires"}[name]
        print(f"| {label} | server made the change (`changed_at`, before its commit) | {stats(applied)} |")
        if name in ("watch", "both"):
            print(f"| | **the change reached the engine through the watch feed** | {stats(result.latencies_s)} |")
        polled = result.latencies_s if name == "poll" else result.polled_latencies_s
        if polled is not None:
            print(f"| | baseline: first listed `scheduled` by a 50 ms poll of the admin list | {stats(polled)} |")
    print(
        f"\n| the feed alone: {args.feed_writes} state changes through the API, one at a time (ms after each was sent) | p50 | p99 | max |"
    )
    print("|---|---:|---:|---:|")
    print(f"| the write answered (committed) | {stats(answered)} |")
    print(f"| **its change reached a watching engine** | {stats(on_feed)} |")
    resumed = ", ".join(f"{name} {result.resumed}/{result.tasks}" for name, (result, _) in rounds.items())
    late = sum(result.late_deferrals for result, _ in rounds.values())
    print(f"\nresumed: {resumed}; late deferrals: {late}; T was {delay_s:.0f} s after deferring began")
    if idle is not None:
        without, with_watchers, bookmarks = idle
        print(
            f"\nidle server CPU over {args.idle_seconds:.0f} s: {without:.2f} % of a core with no stream, "
            f"{with_watchers:.2f} % with {args.idle_watchers} idle watch streams "
            f"(+{with_watchers - without:.2f} %; {bookmarks} bookmarks sent meanwhile)"
        )


if __name__ == "__main__":
    main()
