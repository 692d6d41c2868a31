"""The runtime GET's latency with the retention duty off, then while it deletes 1,000,000 old log rows (PostgreSQL).

    PYTHONPATH=. .venv/bin/python benchmarks/retention.py [--rows 1000000] [--seconds 15] [--rate 150]

One fresh PostgreSQL database; ``--rows`` trigger-log rows 30 days old are seeded with one
``INSERT ... SELECT generate_series``. Phase 1: a real ``tocsin api-server`` (one worker) with
``TOCSIN_RETENTION=false``; ``--concurrency`` loopback clients GET one variable, ``--rate`` GETs/s in all,
for ``--seconds``. Phase 2: the
same server restarted with the duty on (it starts sweeping at startup); the same load runs until the table is
empty or for ``--deadline`` seconds. Both phases' p50/p99 and the rows/s deleted are printed in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import postgres_database
from harness.live_server import live_server

SECRET = "benchmark-only-secret-" + "s" * 40
VARIABLE = "retention_bench"


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _seed(url: str, rows: int) -> None:
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.execute(
            "INSERT INTO trigger_log (job_id, trigger_id, timestamp, level, event, truncated)"
            " SELECT 1, g % 1000, now() - interval '30 days', 'info', 'an old log line ' || g, false"
            " FROM generate_series(1, $1::int) AS g",
            rows,
        )
        await connection.execute("ANALYZE trigger_log")
    finally:
        await connection.close()


async def _remaining(url: str) -> int:
    connection = await asyncpg.connect(_dsn(url))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM trigger_log"))
    finally:
        await connection.close()


async def _load(base: str, token: str, concurrency: int, rate: float, stop: asyncio.Event) -> list[float]:
    """GET the variable from ``concurrency`` clients, ``rate`` requests/s in all, until ``stop``; every latency
    in ms (all must be 200). A paced load below the server's capacity: at saturation any other work on the
    machine shows as latency, which would measure the machine, not the duty."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    spacing = concurrency / rate

    async def client(offset: float) -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10.0) as http:
            due = time.perf_counter() + offset
            while not stop.is_set():
                due += spacing
                started = time.perf_counter()
                response = await http.get(f"/execution/variables/{VARIABLE}")
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    msg = f"GET answered {response.status_code}: {response.text[:200]}"
                    raise RuntimeError(msg)
                await asyncio.sleep(max(due - time.perf_counter(), 0.0))

    await asyncio.gather(*(client(spacing * i / concurrency) for i in range(concurrency)))
    return latencies


async def _for_seconds(seconds: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(seconds)
    stop.set()


async def _until_empty(url: str, deadline_s: float, stop: asyncio.Event) -> int:
    """Wait until the table is empty (a count every 5 s) or the deadline; the rows left."""
    started = time.monotonic()
    try:
        while True:
            left = await _remaining(url)
            if not left or time.monotonic() - started >= deadline_s:
                return left
            await asyncio.sleep(5.0)
    finally:
        stop.set()


def _quantiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=150.0, help="GETs per second in all")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--deadline", type=float, default=60.0)
    args = parser.parse_args()
    token = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue("bench", ["worker"], 3600)
    with postgres_database() as url, tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        asyncio.run(_seed(url, args.rows))
        print(f"seeded {args.rows:,} old trigger-log rows in {time.monotonic() - started:.1f} s")
        env = {"TOCSIN_RETENTION_BATCH_SIZE": str(args.batch), "TOCSIN_RETENTION_INTERVAL_S": "3600"}
        with live_server(url, SECRET, Path(folder) / "off.log", {**env, "TOCSIN_RETENTION": "false"}) as server:
            put = httpx.put(
                f"{server.url}/execution/variables/{VARIABLE}",
                json={"value": "v"},
                headers={"Authorization": f"Bearer {token}"},
            )
            put.raise_for_status()

            async def baseline() -> list[float]:
                stop = asyncio.Event()
                latencies, _ = await asyncio.gather(
                    _load(server.url, token, args.concurrency, args.rate, stop), _for_seconds(args.seconds, stop)
                )
                return latencies

            off = asyncio.run(baseline())
        assert asyncio.run(_remaining(url)) == args.rows, "the duty ran while it was off"
        started = time.monotonic()  # the duty starts with the server: its startup counts against rows/s
        with live_server(url, SECRET, Path(folder) / "on.log", {**env, "TOCSIN_RETENTION": "true"}) as server:

            async def during() -> tuple[list[float], int]:
                stop = asyncio.Event()
                latencies, left = await asyncio.gather(
                    _load(server.url, token, args.concurrency, args.rate, stop), _until_empty(url, args.deadline, stop)
                )
                return latencies, left

            on, left = asyncio.run(during())
            elapsed = time.monotonic() - started
    off_p50, off_p99 = _quantiles(off)
    on_p50, on_p99 = _quantiles(on)
    print(
        f"duty off:     {len(off):6d} GETs in {args.seconds:.0f} s at {args.rate:.0f}/s, p50 {off_p50:.2f} ms, p99 {off_p99:.2f} ms"
    )
    print(f"duty running: {len(on):6d} GETs, p50 {on_p50:.2f} ms, p99 {on_p99:.2f} ms")
    deleted = args.rows - left
    print(f"deleted {deleted:,} rows in {elapsed:.1f} s from server start: {deleted / elapsed:,.0f} rows/s")
    if left:
        print(f"{left:,} rows were left at the deadline (--deadline {args.deadline:.0f} s); the duty goes on")


if __name__ == "__main__":
    main()
