"""Triggerer density end to end: a real ``tocsin triggerer`` claiming N idle triggers from a real API server.

    .venv/bin/python benchmarks/triggerer_density.py --end-to-end [--runners 2] [--db postgres|sqlite] [N ...]

For each N: a fresh database is seeded (SQL, not the API: a million deferrals through the API would take an
hour) with N task instances deferred on ``DateTimeTrigger``s due in 30 days, exactly as ``update_state`` stores
them; one ``tocsin api-server`` serves it. First, the baseline of the same run: a triggerer (supervisor and its
runners) holding nothing, its RSS/PSS summed over its processes. Then the measured triggerer starts
(``--capacity N``) and is polled through its metrics endpoint until it holds (claims) and runs all N; then,
after a settle, its memory, idle CPU, the server's idle CPU and the heartbeat age are read over ``--idle``
seconds. Claim and workload-fetch cost: the server's and the supervisor's CPU seconds from start to all
running, per trigger (flat in N means linear).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine
from tocsin_client import serde
from tocsin_server.db import migrate
from tocsin_server.db import models as m
from tocsin_server.web.tokens import TokenAuthority
from triggerer_density import cpu_s, pss_kib, rss_kib
from triggerer_latency import POSTGRES_ADMIN, SECRET, _pg, free_port, wait_ready

SEED_CHUNK = 5_000
PROM_NAMES = ("held_triggers", "running_triggers", "heartbeat_age_seconds")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the supervisor and its runner processes)."""
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += tree(int(child))
    return found


def tree_memory(pid: int) -> tuple[int, int]:
    pids = tree(pid)
    return sum(rss_kib(p) for p in pids), sum(pss_kib(p) for p in pids)


def tree_cpu(pid: int) -> float:
    return sum(cpu_s(p) for p in tree(pid))


async def seed(database_url: str, n: int) -> float:
    """N deferred task instances with their triggers; returns the seconds it took."""
    began = time.monotonic()
    engine = create_async_engine(database_url)
    now = datetime.now(UTC)
    kwargs = json.dumps(serde.serialize({"moment": now + timedelta(days=30)}), separators=(",", ":"))
    async with engine.begin() as connection:
        await connection.execute(
            insert(m.DagRun), [{"dag_id": "density", "run_id": "r", "state": "running", "created_at": now}]
        )
        for offset in range(0, n, SEED_CHUNK):
            ids = range(offset + 1, min(n, offset + SEED_CHUNK) + 1)
            await connection.execute(
                insert(m.Trigger),
                [
                    {
                        "id": i,
                        "classpath": "tocsin_client.triggers.DateTimeTrigger",
                        "kwargs": kwargs,
                        "created_date": now,
                    }
                    for i in ids
                ],
            )
            await connection.execute(
                insert(m.TaskInstance),
                [
                    {
                        "id": uuid.uuid4(),
                        "dag_id": "density",
                        "run_id": "r",
                        "task_id": f"t{i}",
                        "map_index": -1,
                        "try_number": 1,
                        "state": "deferred",
                        "trigger_id": i,
                        "trigger_timeout": None,
                        "next_method": "execute_complete",
                        "next_kwargs": "{}",
                        "start_from_trigger": False,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
        # Statistics, as a live database has them: right after a bulk load the planner believes the table empty
        # and claims unassigned triggers by sorting all of them instead of walking the partial index in order.
        await connection.execute(text("ANALYZE"))
    await engine.dispose()
    return time.monotonic() - began


def metrics(port: int) -> dict[str, float]:
    values: dict[str, float] = {}
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return values
    for line in text.splitlines():
        for name in PROM_NAMES:
            if line.startswith(f"tocsin_triggerer_{name} "):
                values[name] = float(line.split()[1])
    return values


class Triggerer:
    def __init__(self, cli: list[str], env: dict[str, str], url: str, capacity: int, runners: int, log: Path) -> None:
        self.port = free_port()
        command = [
            *cli,
            "triggerer",
            "--api-url",
            url,
            "--capacity",
            str(capacity),
            "--runners",
            str(runners),
            "--metrics-port",
            str(self.port),
            "--grace-period",
            "5",
        ]
        self._log = log.open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.runners = runners

    def ready(self) -> bool:
        return bool(metrics(self.port)) and len(tree(self.process.pid)) > self.runners

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


async def until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {timeout_s:.0f} s: {what}")
        await asyncio.sleep(0.25)


async def measure(n: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    pg_name = None
    if args.db == "sqlite":
        database_url = f"sqlite+aiosqlite:///{folder / f'density-{n}.db'}"
    else:
        pg_name = f"tocsin_density_{uuid.uuid4().hex[:8]}"
        await _pg(f'CREATE DATABASE "{pg_name}"')
        base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        database_url = f"{base}/{pg_name}"
    await asyncio.to_thread(migrate.upgrade, database_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The server caps a job's capacity at TOCSIN_MAX_CAPACITY (100,000 by default): one host holding N needs more.
    env = {
        **os.environ,
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_JWT_SECRET": SECRET,
        "TOCSIN_MAX_CAPACITY": str(max(n, 100_000)),
    }
    if args.claims_per_call:
        env["TOCSIN_MAX_CLAIMS_PER_CALL"] = str(args.claims_per_call)
    cli = [sys.executable, "-m", "tocsin_cli"]
    server_log = (folder / f"server-{n}.log").open("wb")
    server = subprocess.Popen(  # noqa: ASYNC220
        [*cli, "api-server", "--port", str(port)], env=env, stdout=server_log, stderr=subprocess.STDOUT
    )
    triggerer_env = {
        **env,
        "TOCSIN_TOKEN": TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue(
            "density", ["triggerer"], 7200
        ),
    }
    result: dict[str, Any] = {"n": n}
    try:
        await asyncio.to_thread(wait_ready, url)
        empty = Triggerer(cli, triggerer_env, url, 1, args.runners, folder / f"empty-{n}.log")
        await until(empty.ready, 60, "the empty triggerer's metrics")
        await asyncio.sleep(args.settle)
        result["empty_rss_kib"], result["empty_pss_kib"] = tree_memory(empty.process.pid)
        empty.stop()
        result["seed_s"] = await seed(database_url, n)
        server_cpu0 = cpu_s(server.pid)
        began = time.monotonic()
        full = Triggerer(cli, triggerer_env, url, n, args.runners, folder / f"full-{n}.log")
        try:
            held_at = None
            max_age = 0.0
            supervisor_cpu0 = None  # at its first metrics answer: up and registered, imports paid
            while True:
                values = metrics(full.port)
                if values and supervisor_cpu0 is None:
                    supervisor_cpu0 = cpu_s(full.process.pid)
                max_age = max(max_age, values.get("heartbeat_age_seconds", 0.0))
                if held_at is None and values.get("held_triggers", 0) >= n:
                    held_at = time.monotonic() - began
                if values.get("running_triggers", 0) >= n:
                    break
                if time.monotonic() - began > args.ramp_timeout:
                    raise SystemExit(f"{n}: not all running within {args.ramp_timeout:.0f} s: {values}")
                await asyncio.sleep(0.25)
            result["held_s"] = held_at
            result["running_s"] = time.monotonic() - began
            result["server_cpu_us"] = (cpu_s(server.pid) - server_cpu0) / n * 1e6
            result["supervisor_cpu_us"] = (cpu_s(full.process.pid) - (supervisor_cpu0 or 0.0)) / n * 1e6
            result["ramp_heartbeat_age_s"] = max_age
            await asyncio.sleep(args.settle)
            result["rss_kib"], result["pss_kib"] = tree_memory(full.process.pid)
            triggerer_cpu0, server_cpu0 = tree_cpu(full.process.pid), cpu_s(server.pid)
            idle_began, max_age = time.monotonic(), 0.0
            while time.monotonic() - idle_began < args.idle:
                max_age = max(max_age, metrics(full.port).get("heartbeat_age_seconds", 0.0))
                await asyncio.sleep(0.5)
            elapsed = time.monotonic() - idle_began
            result["cpu_pct"] = 100 * (tree_cpu(full.process.pid) - triggerer_cpu0) / elapsed
            result["server_cpu_pct"] = 100 * (cpu_s(server.pid) - server_cpu0) / elapsed
            result["idle_heartbeat_age_s"] = max_age
            stop_began = time.monotonic()
        finally:
            full.stop()
        result["stop_s"] = time.monotonic() - stop_began
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        server_log.close()
        if pg_name:
            await _pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    return result


async def run_end_to_end(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="tocsin-density-"))
    load = os.getloadavg()
    print(
        f"# triggerer density end to end — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {args.db}, {args.runners} runners, "
        f"claims per call {args.claims_per_call or 'default'}; load average before {load[0]:.1f}; logs {folder}"
    )
    print(f"# memory after {args.settle:.0f} s settle; idle CPU over {args.idle:.0f} s; heartbeat interval 5 s\n")
    print(
        "| N | seeded in | all held after | all running after | server CPU µs/trigger (ramp) "
        "| supervisor CPU µs/trigger (ramp) | triggerer RSS MiB (empty baseline) | KiB/trigger RSS (PSS) "
        "| triggerer idle CPU % | server idle CPU % | max heartbeat age s (ramp / idle) | stop |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        r = await measure(n, args, folder)
        print(
            f"| {n:,} | {r['seed_s']:.0f} s | {r['held_s']:.1f} s | {r['running_s']:.1f} s | {r['server_cpu_us']:.0f} "
            f"| {r['supervisor_cpu_us']:.0f} | {r['rss_kib'] / 1024:.0f} ({r['empty_rss_kib'] / 1024:.0f}) "
            f"| {(r['rss_kib'] - r['empty_rss_kib']) / n:.2f} ({(r['pss_kib'] - r['empty_pss_kib']) / n:.2f}) "
            f"| {r['cpu_pct']:.2f} | {r['server_cpu_pct']:.2f} "
            f"| {r['ramp_heartbeat_age_s']:.1f} / {r['idle_heartbeat_age_s']:.1f} | {r['stop_s']:.1f} s |",
            flush=True,
        )
