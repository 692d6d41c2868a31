"""``tocsin api-server --workers 2``: whichever worker answers a scrape reports both workers' counts summed, a worker
that is killed leaves its counts but not its live gauges, and the private metrics folder goes with the server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from harness.databases import sqlite_database
from harness.live_server import live_server
from tests.conftest import SECRET
from tests.integration.test_metrics import pool_size
from tests.support.metrics import scrape

pytestmark = pytest.mark.slow

HEALTH = {"operation": "getHealth", "status": "200"}
BATCH = 40
MAX_REQUESTS = 2000


def workers_in(folder: Path) -> list[int]:
    """The worker processes that registered in the metrics folder (tocsin's own marker files)."""
    return sorted(int(marker.stem.rsplit("-", 1)[1]) for marker in folder.glob("tocsin-worker-*.pid"))


def served_by(folder: Path, pid: int, scratch: Path) -> float:
    """The health checks one worker answered: its own files alone, read by prometheus_client's collector."""
    alone = scratch / str(pid)
    shutil.rmtree(alone, ignore_errors=True)
    alone.mkdir(parents=True)
    for file in folder.glob(f"*_{pid}.db"):
        shutil.copy(file, alone / file.name)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
    return registry.get_sample_value("tocsin_http_requests_total", {"operation": "getHealth", "status": "200"}) or 0.0


def test__two_workers__every_scrape_sums_both__a_killed_one_keeps_its_counts(tmp_path: Path) -> None:
    env = {"TOCSIN_WORKERS": "2", "TMPDIR": str(tmp_path)}  # the server's private folder is made under TMPDIR
    with (
        sqlite_database(tmp_path) as url,
        live_server(url, SECRET, tmp_path / "server.log", env, ready_within_s=90) as server,  # 3 processes start
    ):
        [folder] = tmp_path.glob("tocsin-metrics-*")
        deadline = time.monotonic() + 30
        while len(workers_in(folder)) < 2:
            assert time.monotonic() < deadline, "the second worker never started"
            time.sleep(0.05)
        pids = workers_in(folder)
        sent = 0
        # new connections until both workers answered some (the kernel spreads accepts; no fixed count guarantees it)
        while sent < MAX_REQUESTS and not all(served_by(folder, pid, tmp_path / "alone") for pid in pids):
            for _ in range(BATCH):
                assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
            sent += BATCH
        shares = [served_by(folder, pid, tmp_path / "alone") for pid in pids]
        assert all(shares), f"one worker answered all {sent} requests: {shares}"
        assert sum(shares) == sent

        for _ in range(6):  # each scrape on a new connection: answered by either worker, always the whole sum
            summed = scrape(f"{server.url}/metrics")
            assert summed.value("tocsin_http_requests_total", **HEALTH) == sent
            assert summed.value("tocsin_http_request_duration_seconds_count", operation="getHealth") == sent
        size = pool_size(url)
        assert scrape(f"{server.url}/metrics").value("tocsin_db_pool_size") == 2 * size

        os.kill(pids[0], signal.SIGKILL)  # uvicorn starts a new worker; the dead one never said goodbye
        deadline = time.monotonic() + 60
        while not (pids[0] not in workers_in(folder) and len(workers_in(folder)) == 2):
            assert time.monotonic() < deadline, f"the killed worker was not replaced: {workers_in(folder)}"
            httpx.get(f"{server.url}/metrics", timeout=10)  # a scrape forgets the dead worker's live gauges
            time.sleep(0.1)
        after = scrape(f"{server.url}/metrics")
        assert after.value("tocsin_http_requests_total", **HEALTH) == sent  # counters never go back
        assert after.value("tocsin_db_pool_size") == 2 * size  # the live workers only, not three
    assert not folder.exists()


def test__a_metrics_folder_that_does_not_exist__is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(missing), "TOCSIN_JWT_SECRET": SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "tocsin_cli", "api-server", "--workers", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"tocsin api-server: configuration error: PROMETHEUS_MULTIPROC_DIR={missing} is not a folder: "
        "create it (empty) or unset it\n"
    )
