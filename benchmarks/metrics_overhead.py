"""What the HTTP request metrics add to every request, in microseconds, beside a whole request for scale.

    python -m benchmarks.metrics_overhead [--rounds 5] [--n 200000]
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) python -m benchmarks.metrics_overhead   # as a worker of --workers N

Three measures, each timed in CPU time of this process (``time.process_time``: a round that waits for a core
shared with other work is not charged for it), the best round counting (interference only ever adds time):
1. ``mark_started``: the latency's start, noted by the first middleware (the request log's);
2. ``record_response``: the ``before_send`` hook on a response start (the labelled children already made);
3. for scale, a whole ``GET /health`` through the real app in process (ASGI, no socket).
The figures are recorded in docs/operations.md, "Metrics".
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tocsin_server.api.health import get_health
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.db import migrate
from tocsin_server.web.request_metrics import mark_started, record_response


async def _noop(*_: Any) -> None:
    return None


def _best_us(rounds: int, n: int, step: Callable[[], Awaitable[None]]) -> float:
    async def run() -> float:
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(n):
                await step()
            best = min(best, (time.process_time() - started) / n)
        return best * 1e6

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()

    scope: dict[str, Any] = {"type": "http", "route_handler": get_health}
    start = {"type": "http.response.start", "status": 200, "headers": []}

    async def timer() -> None:
        mark_started(scope, time.perf_counter())  # type: ignore[arg-type]
        await _noop()

    bare = _best_us(args.rounds, args.n, _noop)
    print(f"an empty await:  {bare:6.2f} µs (this machine's speed, to compare runs)")
    timed = _best_us(args.rounds, args.n, timer)
    hook = _best_us(args.rounds, args.n, lambda: record_response(start, scope))  # type: ignore[arg-type]
    print(f"mark_started:    {timed - bare:6.2f} µs per request")
    print(f"record_response: {hook:6.2f} µs per request")
    print(f"both:            {timed - bare + hook:6.2f} µs per request")

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        migrate.upgrade(url)
        app = create_app(Settings(database_url=url, jwt_secret="b" * 40).validate(), periodic_duties=False)
        request: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/health",
            "raw_path": b"/health",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        whole = _best_us(max(args.rounds, 3), args.n // 20, lambda: app(dict(request), receive, _noop))  # type: ignore[arg-type]
    print(f"GET /health:     {whole:6.2f} µs per request (the whole request in process, for scale)")


if __name__ == "__main__":
    main()
