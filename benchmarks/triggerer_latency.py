"""Fire-to-resume latency: N task instances whose triggers fire in the same instant, end to end.

    .venv/bin/python benchmarks/triggerer_latency.py [--tasks 1000] [--db sqlite|postgres] [--runners K]
        [--observe poll|watch]

A real ``tocsin api-server`` process and a real ``tocsin triggerer`` process on a fresh database. N task
instances are deferred on ``DateTimeTrigger``s due at the same moment T (``tocsin demo``'s flow), then:

- server applying: each task instance's ``updated_at``, minus T — the server stamps every row of one event
  batch with the time it began applying that batch (read from the database after the run); the commit follows;
- seen by the poller: when the demo's admin-API poll first saw it ``scheduled``, minus T (Airflow's anchor was
  measured this way, with a 50 ms DB poller);
- or, with ``--observe watch``, seen on the watch feed: when its change reached the demo's change-feed watch,
  minus T — pushed after the commit, so the tighter bound on "committed" when a poll of N rows takes long itself.

``--seed sql``: the N deferrals (and the baseline's N running task instances) are written straight into the
database, as ``update_state`` stores them, instead of through the API: on a loaded machine 10,000 deferrals
through the API take longer than any ``--delay``, and only the fire matters here. The triggerer claims them
before T (checked: the count it held at T is printed); the poller is the same as the demo's.

Baseline in the same run, same server and database: the same N task instances changed directly through the API
(PATCH to ``success``, 32 in flight) starting at one instant — the floor any triggerer stands on. Airflow 3.3.2's
recorded anchor: 13.0 s until all 1,000 resumed (p50 8.0 s, p99 12.9 s, seen by a 50 ms poller).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine
from tocsin_client import AsyncClient, serde
from tocsin_client.demo import DemoResult, percentile, run_demo
from tocsin_client.generated.models import (
    DagRunBody,
    RunningStateUpdate,
    SuccessStateUpdate,
    TaskInstanceBody,
    TaskInstanceStateName,
)
from tocsin_server.db import migrate
from tocsin_server.db import models as m
from tocsin_server.web.tokens import TokenAuthority

SECRET = "bench-secret-" + "b" * 40
SEED_CHUNK = 5_000
DATETIME_TRIGGER = "tocsin_client.triggers.DateTimeTrigger"
POSTGRES_ADMIN = os.environ.get("TOCSIN_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server at {url} did not get ready")


async def _pg(sql: str, dsn: str = POSTGRES_ADMIN) -> list[tuple[object, ...]]:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


def resumed_at(database_url: str, dag_id: str, run_id: str) -> list[datetime]:
    sql = f"SELECT updated_at FROM task_instance WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split("///", 1)[1]) as connection:
            rows = connection.execute(sql).fetchall()
    else:
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        rows = asyncio.run(_pg(sql, dsn))
    values = []
    for (value,) in rows:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        values.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return values


async def seed(database_url: str, dag_id: str, run_id: str, tasks: int, state: str, moment: datetime | None) -> None:
    """N task instances of a new dag run in ``state``; deferred ones on a ``DateTimeTrigger`` due at ``moment``."""
    engine = create_async_engine(database_url)
    now = datetime.now(UTC)
    kwargs = json.dumps(serde.serialize({"moment": moment}), separators=(",", ":"))
    async with engine.begin() as connection:
        await connection.execute(
            insert(m.DagRun), [{"dag_id": dag_id, "run_id": run_id, "state": "running", "created_at": now}]
        )
        for offset in range(0, tasks, SEED_CHUNK):
            numbers = range(offset, min(tasks, offset + SEED_CHUNK))
            trigger_ids: list[int | None] = [None] * len(numbers)
            if moment is not None:
                rows = [{"classpath": DATETIME_TRIGGER, "kwargs": kwargs, "created_date": now} for _ in numbers]
                result = await connection.execute(insert(m.Trigger).returning(m.Trigger.id), rows)
                trigger_ids = [row[0] for row in result]
            await connection.execute(
                insert(m.TaskInstance),
                [
                    {
                        "id": uuid.uuid4(),
                        "dag_id": dag_id,
                        "run_id": run_id,
                        "task_id": f"wait_{n:06d}",
                        "map_index": -1,
                        "try_number": 1,
                        "state": state,
                        "trigger_id": trigger_id,
                        "trigger_timeout": None,
                        "next_method": "execute_complete" if moment is not None else None,
                        "next_kwargs": "{}" if moment is not None else None,
                        "start_from_trigger": False,
                        "updated_at": now,
                    }
                    for n, trigger_id in zip(numbers, trigger_ids, strict=True)
                ],
            )
        await connection.execute(text("ANALYZE"))
    await engine.dispose()


def held_triggers(database_url: str) -> int:
    """Triggers a triggerer holds now."""
    sql = "SELECT count(*) FROM trigger WHERE triggerer_id IS NOT NULL"
    if database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(database_url.split("///", 1)[1])) as connection:
            return int(str(connection.execute(sql).fetchone()[0]))
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return int(str(asyncio.run(_pg(sql, dsn))[0][0]))


async def seeded_demo(client: AsyncClient, database_url: str, tasks: int, delay_s: float) -> DemoResult:
    """The demo's fire and poll, on deferrals written into the database."""
    run_id = f"seeded_{uuid.uuid4().hex[:8]}"
    moment = datetime.now(UTC) + timedelta(seconds=delay_s)
    await seed(database_url, "tocsin_demo", run_id, tasks, "deferred", moment)
    sys.stderr.write(f"seeded {tasks} deferrals firing at {moment.isoformat(timespec='milliseconds')}\n")
    await asyncio.sleep(max(0.0, moment.timestamp() - time.time() - 1.0))
    held = await asyncio.to_thread(held_triggers, database_url)
    sys.stderr.write(f"held by the triggerer 1 s before T: {held}/{tasks}\n")
    seen: dict[uuid.UUID, float] = {}
    deadline = moment.timestamp() + 120
    while len(seen) < tasks and time.time() < deadline:
        offset = 0
        while True:
            page = await client.list_task_instances(
                dag_id="tocsin_demo", run_id=run_id, state=TaskInstanceStateName.scheduled, limit=1000, offset=offset
            )
            now = time.time()
            for ti in page.task_instances:
                seen.setdefault(ti.id, now)
            offset += 1000
            if offset >= page.total:
                break
        if len(seen) < tasks:
            await asyncio.sleep(0.05 if time.time() >= moment.timestamp() - 0.5 else 0.25)
    fired = moment.timestamp()
    latencies = [max(0.0, at - fired) for at in seen.values()]
    return DemoResult(tasks, len(seen), latencies, tasks - held, moment, "poll")


async def direct_baseline(client: AsyncClient, tasks: int, database_url: str | None = None) -> list[float]:
    """N task instances moved to success through the API at once: seconds from the start to each answer.

    With ``database_url`` the running task instances are written into the database first, not created through
    the API."""
    semaphore = asyncio.Semaphore(32)
    if database_url is not None:
        await seed(database_url, "baseline", "direct", tasks, "running", None)
        listed: list[uuid.UUID] = []
        for offset in range(0, tasks, 1000):
            page = await client.list_task_instances(dag_id="baseline", run_id="direct", limit=1000, offset=offset)
            listed.extend(ti.id for ti in page.task_instances)
        return await _finish_all(client, listed, semaphore)
    await client.create_dag_run(DagRunBody(dag_id="baseline", run_id="direct"))

    async def create(n: int) -> uuid.UUID:
        async with semaphore:
            ti = await client.create_task_instance(
                TaskInstanceBody(dag_id="baseline", run_id="direct", task_id=f"t{n}")
            )
            await client.update_task_instance_state(ti.id, RunningStateUpdate())
            return ti.id

    ids = await asyncio.gather(*(create(n) for n in range(tasks)))
    return await _finish_all(client, list(ids), semaphore)


async def _finish_all(client: AsyncClient, ids: list[uuid.UUID], semaphore: asyncio.Semaphore) -> list[float]:
    started = time.monotonic()

    async def finish(ti_id: uuid.UUID) -> float:
        async with semaphore:
            await client.update_task_instance_state(ti_id, SuccessStateUpdate())
        return time.monotonic() - started

    return list(await asyncio.gather(*(finish(ti_id) for ti_id in ids)))


def stats(values: list[float]) -> str:
    ms = [value * 1000 for value in values]
    return f"{percentile(ms, 0.5):.0f} | {percentile(ms, 0.99):.0f} | {max(ms):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runners", type=int, default=1)
    parser.add_argument("--server-workers", type=int, default=1, help="API server worker processes (--workers)")
    parser.add_argument("--delay", type=float, default=10.0, help="seconds from deferral to T")
    parser.add_argument(
        "--baseline-tasks", type=int, default=None, help="direct changes in the baseline (default: --tasks)"
    )
    parser.add_argument("--seed", choices=("api", "sql"), default="api", help="how the deferrals are made (above)")
    parser.add_argument(
        "--observe", choices=("poll", "watch"), default="poll", help="how the demo sees a resume (see above)"
    )
    args = parser.parse_args()
    baseline_tasks = args.tasks if args.baseline_tasks is None else args.baseline_tasks
    folder = Path(tempfile.mkdtemp(prefix="tocsin-latency-"))
    pg_name = None
    if args.db == "sqlite":
        database_url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    else:
        pg_name = f"tocsin_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg(f'CREATE DATABASE "{pg_name}"'))
        base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        database_url = f"{base}/{pg_name}"
    migrate.upgrade(database_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TOCSIN_DATABASE_URL": database_url, "TOCSIN_JWT_SECRET": SECRET}
    authority = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin")
    cli = [sys.executable, "-m", "tocsin_cli"]
    logs = (folder / "server.log").open("wb"), (folder / "triggerer.log").open("wb")
    server = subprocess.Popen(
        [*cli, "api-server", "--port", str(port), "--workers", str(args.server_workers)],
        env=env,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    triggerer = None
    try:
        wait_ready(url)
        triggerer_env = {**env, "TOCSIN_TOKEN": authority.issue("bench", ["triggerer"], 3600)}
        triggerer = subprocess.Popen(
            [*cli, "triggerer", "--api-url", url, "--capacity", str(args.tasks * 2), "--runners", str(args.runners)],
            env=triggerer_env,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        )
        token = authority.issue("bench-admin", ["admin", "worker"], 3600)

        async def run() -> tuple[DemoResult, list[float]]:
            async with AsyncClient(url, token=token) as client:
                if args.seed == "sql":
                    baseline = await direct_baseline(client, baseline_tasks, database_url)
                    result = await seeded_demo(client, database_url, args.tasks, args.delay)
                    return result, baseline
                baseline = await direct_baseline(client, baseline_tasks)
                result = await run_demo(
                    client, args.tasks, delay_s=args.delay, timeout_s=120, out=sys.stderr, observe=args.observe
                )
            return result, baseline

        result, baseline = asyncio.run(run())
        dag_runs = httpx.get(f"{url}/api/v1/dag-runs", headers={"Authorization": f"Bearer {token}"}).json()
        run_id = next(run["run_id"] for run in dag_runs["dag_runs"] if run["dag_id"] == "tocsin_demo")
        fire_at = result.fire_at
        server_resumed = [(at - fire_at).total_seconds() for at in resumed_at(database_url, "tocsin_demo", run_id)]
        print(
            f"# fire-to-resume — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, {args.db}, {args.runners} runner(s), "
            f"{args.server_workers} server worker(s)\n"
        )
        print(f"| measure (N = {args.tasks:,}, ms after T) | p50 | p99 | max |")
        print("|---|---:|---:|---:|")
        print(f"| tocsin: server began applying the event (`updated_at`) | {stats(server_resumed)} |")
        seen_by = "the admin-API poller" if args.observe == "poll" else "the watch feed"
        print(f"| **tocsin: seen `scheduled` by {seen_by} (after commit)** | {stats(result.latencies_s)} |")
        print(
            f"| baseline, same run: {baseline_tasks:,} direct state changes through the API, from one instant | {stats(baseline)} |"
        )
        print("| Airflow 3.3.2 (recorded anchor, 50 ms DB poller) | 8,000 | 12,910 | 13,010 |")
        print(f"\nresumed {result.resumed}/{result.tasks}; late deferrals: {result.late_deferrals}")
    finally:
        for process in (triggerer, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        for log in logs:
            log.close()
        if pg_name:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
