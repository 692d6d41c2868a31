"""What else runs on the API server's event loop while it serves, beside what one request costs (issue 11, item 3).

    python -m benchmarks.loop_stalls [--db postgres|sqlite] [--requests 20000]

At 64 connections a CPU-bound server's latency is the time the loop takes to go round every ready request (64 times
a request's CPU, by Little's law), so the tail is made by anything else that holds the loop: garbage collection
and the periodic duties. This measures both in one process, in CPU time (``time.process_time``: time spent waiting
for a core another job holds is not charged), beside the baseline of the same run, the CPU of one runtime GET
through the real app (ASGI, no socket; the HTTP server's own share, uvicorn's, comes on top), its request line
written in JSON to a file as the server writes it:

1. the runtime GET (``GET /execution/variables/{key}``, PostgreSQL with the read cache, or SQLite on the loop);
2. the garbage collector during those requests: collections per generation and their longest pause
   (``gc.callbacks``), and the collections that ran while the app started, for contrast;
3. one round of the periodic duties (timeouts, dead jobs, cleanup; each claimed, as on the replica that wins them),
   in CPU ms and in requests' worth.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvloop
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.db import migrate
from tocsin_server.db.engine import create_write_engine
from tocsin_server.db.transactions import create_sessionmaker
from tocsin_server.services.maintenance import run_periodic_duties
from tocsin_server.web.tokens import TokenAuthority
from tocsin_wire.logs import LogSettings, configure_logging

SECRET = "loop-stalls-" + "b" * 40
PATH = "/execution/variables/bench_var"


class GcWatch:
    """Counts the collector's runs per generation and their longest pause while ``on``."""

    def __init__(self) -> None:
        self.runs = [0, 0, 0]
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.runs[generation] += 1
        self.longest[generation] = max(self.longest[generation], time.perf_counter() - self._started)

    def take(self) -> tuple[list[int], list[float]]:
        seen = (self.runs, self.longest)
        self.runs, self.longest = [0, 0, 0], [0.0, 0.0, 0.0]
        return seen


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A migrated database of ``kind`` that is dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'stalls.db'}"
            migrate.upgrade(url)
            yield url
        return
    name = f"tocsin_stalls_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"]
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True)
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        migrate.upgrade(url)
        yield url
    finally:
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True)


def _scope(method: str, token: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def measure(url: str, requests: int, watch: GcWatch) -> dict[str, Any]:
    settings = Settings(database_url=url, jwt_secret=SECRET).validate()
    app = create_app(settings, periodic_duties=False)
    token = TokenAuthority.for_settings(settings).issue("loop-stalls", ["worker"], 3600)
    body = b'{"value":"hello from the bench variable"}'
    statuses: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    results: dict[str, Any] = {}
    async with app.lifespan():  # type: ignore[attr-defined]  # Litestar's lifespan context manager
        await app(_scope("PUT", token, body), receive, send)  # type: ignore[arg-type]
        results["startup_gc"] = watch.take()
        rounds = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(requests // 5):
                await app(_scope("GET", token, b""), receive, send)  # type: ignore[arg-type]
            rounds.append((time.process_time() - started) / (requests // 5))
        results["request_us"] = min(rounds) * 1e6  # interference only ever adds time: the best round counts
        results["request_gc"] = watch.take()
        results["statuses"] = sorted(set(statuses))
    duty_settings = Settings(
        database_url=url, jwt_secret=SECRET, timeout_check_interval_s=0.001, cleanup_interval_s=0.001
    ).validate()
    engine = create_write_engine(duty_settings)
    sessionmaker = create_sessionmaker(engine)
    costs = []
    for _ in range(8):
        await asyncio.sleep(0.01)  # past the 1 ms interval: each round claims both duties
        started = time.process_time()
        await run_periodic_duties(sessionmaker, duty_settings)
        costs.append(time.process_time() - started)
    await engine.dispose()
    results["duty_ms"] = statistics.median(costs[1:]) * 1000  # the first round pays the engine's first connect
    return results


def _gc_line(seen: tuple[list[int], list[float]]) -> str:
    runs, longest = seen
    return ", ".join(f"gen{g} {runs[g]} (longest {longest[g] * 1000:.1f} ms)" for g in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    watch = GcWatch()
    with tempfile.TemporaryFile("w") as log_file:
        configure_logging(LogSettings(format="json"), stream=log_file)  # the server's request line, at its cost
        with database(args.db) as url:
            found = uvloop.run(measure(url, args.requests, watch))
    if found["statuses"] != [200]:
        raise SystemExit(f"the requests answered {found['statuses']}, not only 200")
    request_us = found["request_us"]
    print(f"database: {args.db}; {args.requests} runtime GETs through the app in process (pid {os.getpid()})")
    print(f"baseline, one runtime GET:            {request_us:8.1f} µs of CPU")
    print(f"garbage collector while starting:     {_gc_line(found['startup_gc'])}")
    print(f"garbage collector during the GETs:    {_gc_line(found['request_gc'])}")
    duty_ms = found["duty_ms"]
    print(
        f"one periodic-duty round (both won):   {duty_ms:8.2f} ms of CPU = {duty_ms * 1000 / request_us:.0f} GETs' worth"
    )


if __name__ == "__main__":
    main()
