"""Event ingestion on PostgreSQL: the bulk endpoint against one request per event, in the same run.

    .venv/bin/python benchmarks/events_bulk.py [--events 4000] [--batch 500] [--concurrency 16] [--server-workers 1]

Starts a real ``tocsin api-server`` on a fresh PostgreSQL database, defers ``2 × events`` task instances
(inserted directly, so setup is quick), claims them with one job, then resumes half of them through
``POST /execution/triggers/{id}/event`` (one request per event, ``concurrency`` in flight) and the other half
through ``POST /execution/triggers/events`` (``batch`` events per request). Every event resumes one task
instance; the run checks they all did. Prints events applied per second for both and the ratio, and the server
process's CPU time per event in each phase (read from /proc): on a machine shared with other work the rates
move with the neighbours' load, the CPU per event much less.

The job never heartbeats, so the server is told to wait long before it counts the job dead: a slow single-event
phase on a loaded machine would otherwise outlive the default 30 s and lose the triggers to the reaper.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tocsin_server.web.tokens import TokenAuthority  # noqa: E402

from harness.databases import postgres_database  # noqa: E402
from harness.live_server import live_server  # noqa: E402

SECRET = "benchmark-secret-" + "b" * 40
SERVER_ENV = {"TOCSIN_LIVENESS_THRESHOLD_S": "3600"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and its live children, its worker processes (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            with contextlib.suppress(FileNotFoundError):  # a worker that exited meanwhile
                total += cpu_seconds(int(child))
    return total


async def seed(url: str, count: int) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    now = datetime.now(UTC)
    try:
        await connection.execute(
            "INSERT INTO dag_run (dag_id, run_id, state, created_at) VALUES ('b', 'r', 'running', $1)", now
        )
        ids = await connection.fetch(
            "INSERT INTO trigger (classpath, kwargs, created_date) SELECT 'x.Trigger', '{}', $1 FROM generate_series(1, $2) RETURNING id",
            now,
            count,
        )
        await connection.executemany(
            "INSERT INTO task_instance (id, dag_id, run_id, task_id, map_index, try_number, state, trigger_id,"
            " next_method, next_kwargs, start_from_trigger, updated_at)"
            " VALUES ($1, 'b', 'r', $2, -1, 1, 'deferred', $3, 'go', '{\"k\": 1}', false, $4)",
            [(uuid.uuid4(), f"t{row['id']}", row["id"], now) for row in ids],
        )
    finally:
        await connection.close()


async def run(
    url: str, server_url: str, server_pid: int, events: int, batch: int, concurrency: int
) -> dict[str, float]:
    authority = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin")
    async with httpx.AsyncClient(base_url=server_url, timeout=120, limits=httpx.Limits(max_connections=64)) as client:
        triggerer = {"Authorization": f"Bearer {authority.issue('bench', ['triggerer'], 3600)}"}
        job = (
            await client.post(
                "/execution/jobs", json={"hostname": "bench", "pid": 1, "capacity": 1_000_000}, headers=triggerer
            )
        ).json()
        headers = {"Authorization": f"Bearer {job['token']}"}
        held: list[int] = []
        while len(held) < 2 * events:
            held = (await client.post("/execution/triggers/load", json={}, headers=headers)).json()["trigger_ids"]
        single, bulk = held[:events], held[events:]

        semaphore = asyncio.Semaphore(concurrency)

        async def one(trigger_id: int) -> None:
            async with semaphore:
                body = {"event_id": f"s-{trigger_id}", "payload": {"n": trigger_id, "ok": True}}
                response = await client.post(f"/execution/triggers/{trigger_id}/event", json=body, headers=headers)
                assert response.status_code == 200 and response.json()["task_instances_resumed"] == 1, response.text

        started, cpu = time.perf_counter(), cpu_seconds(server_pid)
        await asyncio.gather(*(one(t) for t in single))
        single_s, single_cpu = time.perf_counter() - started, cpu_seconds(server_pid) - cpu

        bulk_semaphore = asyncio.Semaphore(max(1, concurrency // 4))

        async def many(chunk: list[int]) -> None:
            async with bulk_semaphore:
                body = {
                    "events": [{"trigger_id": t, "event_id": f"b-{t}", "payload": {"n": t, "ok": True}} for t in chunk]
                }
                response = await client.post("/execution/triggers/events", json=body, headers=headers)
                assert response.status_code == 200, response.text
                assert response.json()["applied"] == len(chunk), response.text

        started, cpu = time.perf_counter(), cpu_seconds(server_pid)
        await asyncio.gather(*(many(bulk[i : i + batch]) for i in range(0, len(bulk), batch)))
        bulk_s, bulk_cpu = time.perf_counter() - started, cpu_seconds(server_pid) - cpu

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        scheduled = await connection.fetchval("SELECT count(*) FROM task_instance WHERE state = 'scheduled'")
    finally:
        await connection.close()
    assert scheduled == 2 * events, f"{scheduled} of {2 * events} task instances resumed"
    return {
        "single_eps": events / single_s,
        "bulk_eps": events / bulk_s,
        "single_cpu_us": 1e6 * single_cpu / events,
        "bulk_cpu_us": 1e6 * bulk_cpu / events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4000, help="events per method")
    parser.add_argument("--batch", type=int, default=500, help="events per bulk request")
    parser.add_argument("--concurrency", type=int, default=16, help="single-event requests in flight")
    parser.add_argument("--server-workers", type=int, default=1, help="API server worker processes (TOCSIN_WORKERS)")
    args = parser.parse_args()
    with postgres_database() as url, tempfile.TemporaryDirectory() as folder:
        asyncio.run(seed(url, 2 * args.events))
        env = {**SERVER_ENV, "TOCSIN_WORKERS": str(args.server_workers)}
        with live_server(url, SECRET, Path(folder) / "server.log", extra_env=env) as server:
            figures = asyncio.run(run(url, server.url, server.pid, args.events, args.batch, args.concurrency))
    print(
        f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
    )
    print(
        f"events per method: {args.events}; bulk batch {args.batch}; single-event concurrency {args.concurrency};"
        f" server workers {args.server_workers}"
    )
    print(
        f"single-event endpoint (baseline): {figures['single_eps']:8.0f} events/s"
        f"   server CPU {figures['single_cpu_us']:6.0f} µs/event"
    )
    print(
        f"bulk endpoint:                    {figures['bulk_eps']:8.0f} events/s"
        f"   server CPU {figures['bulk_cpu_us']:6.0f} µs/event"
    )
    print(
        f"ratio: {figures['bulk_eps'] / figures['single_eps']:.1f}x events/s,"
        f" {figures['single_cpu_us'] / figures['bulk_cpu_us']:.1f}x less server CPU per event"
    )


if __name__ == "__main__":
    main()
