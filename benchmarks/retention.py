"""The runtime GET's latency before, while and after the retention duty deletes 1,000,000 old log rows (PostgreSQL).

    PYTHONPATH=. .venv/bin/python benchmarks/retention.py [--rows 1000000] [--seconds 15] [--rate 150]

One fresh PostgreSQL database and one real ``tocsin api-server`` (one worker) with the retention duty on, ticking
every second. ``--concurrency`` loopback clients GET one variable, ``--rate`` GETs/s in all, in three windows on
the same server: *before* (``--seconds``; the duty runs and finds nothing old), *sweeping* (``--rows`` trigger-log
rows 30 days old are seeded with one ``INSERT ... SELECT generate_series`` while the load pauses, then the load
runs until the duty has deleted them all or ``--deadline`` passes) and *after* (``--seconds`` again, idle). The
two idle windows bracket the sweep, so noise from elsewhere on the machine shows as a difference between them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

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
    """Wait until the table is empty (a count every second) or the deadline; the rows left."""
    started = time.monotonic()
    try:
        while True:
            left = await _remaining(url)
            if not left or time.monotonic() - started >= deadline_s:
                return left
            await asyncio.sleep(1.0)
    finally:
        stop.set()


def _quantiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[98]


async def _window(base: str, token: str, args: argparse.Namespace, until: Any) -> list[float]:
    stop = asyncio.Event()
    latencies, _ = await asyncio.gather(_load(base, token, args.concurrency, args.rate, stop), until(stop))
    return latencies


def _line(name: str, latencies: list[float], seconds: float) -> str:
    p50, p99 = _quantiles(latencies)
    return f"{name:<9} {len(latencies):6d} GETs in {seconds:5.1f} s, p50 {p50:6.2f} ms, p99 {p99:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=150.0, help="GETs per second in all")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--deadline", type=float, default=180.0)
    args = parser.parse_args()
    token = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue("bench", ["worker"], 3600)
    env = {
        "TOCSIN_RETENTION": "true",
        "TOCSIN_RETENTION_BATCH_SIZE": str(args.batch),
        "TOCSIN_RETENTION_INTERVAL_S": "1",
    }
    with (
        postgres_database() as url,
        tempfile.TemporaryDirectory() as folder,
        live_server(url, SECRET, Path(folder) / "server.log", env) as server,
    ):
        headers = {"Authorization": f"Bearer {token}"}
        httpx.put(
            f"{server.url}/execution/variables/{VARIABLE}", json={"value": "v"}, headers=headers
        ).raise_for_status()

        def idle(stop: asyncio.Event) -> Any:
            return _for_seconds(args.seconds, stop)

        before = asyncio.run(_window(server.url, token, args, idle))
        started = time.monotonic()
        asyncio.run(_seed(url, args.rows))
        print(f"seeded {args.rows:,} old trigger-log rows in {time.monotonic() - started:.1f} s (load paused)")
        swept_from = time.monotonic()
        left_box: list[int] = []

        async def until_empty(stop: asyncio.Event) -> None:
            left_box.append(await _until_empty(url, args.deadline, stop))

        sweeping = asyncio.run(_window(server.url, token, args, until_empty))
        sweep_s = time.monotonic() - swept_from
        after = asyncio.run(_window(server.url, token, args, idle))
    print(f"paced load: {args.rate:.0f} GETs/s from {args.concurrency} clients, one server, duty ticking every 1 s")
    print(_line("before", before, args.seconds))
    print(_line("sweeping", sweeping, sweep_s))
    print(_line("after", after, args.seconds))
    deleted = args.rows - left_box[0]
    print(f"deleted {deleted:,} rows in {sweep_s:.1f} s after the seed: {deleted / sweep_s:,.0f} rows/s")
    if left_box[0]:
        print(f"{left_box[0]:,} rows were left at the deadline (--deadline {args.deadline:.0f} s); the duty goes on")


if __name__ == "__main__":
    main()
