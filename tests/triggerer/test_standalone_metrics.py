"""``tocsin standalone --metrics-port``: its triggerer serves its metrics there, the API server its own at /metrics;
a port that cannot be used is one line before anything starts."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from harness.live_server import free_port
from tests.support.metrics import Scrape, scrape
from tests.support.processes import wait_for_output, wait_gone
from tests.triggerer.test_standalone import TOCSIN, clean_env

pytestmark = pytest.mark.slow


def _scrape_when_up(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> Scrape:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, "the standalone exited"
        try:
            return scrape(url)
        except httpx.TransportError:  # not listening yet
            assert time.monotonic() < deadline, f"nothing served {url} within {timeout_s} s"
            time.sleep(0.1)


def test__the_triggerer_serves_its_metrics_on_the_port__the_api_server_at_metrics(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "standalone.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*TOCSIN, "standalone", "--port", str(port), "--metrics-port", str(metrics_port)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_output(log, "registered job", process, 90)
        triggerer = _scrape_when_up(f"http://127.0.0.1:{metrics_port}/metrics", process)
        assert {"tocsin_triggerer_held_triggers", "tocsin_triggerer_heartbeat_age_seconds"} <= triggerer.names()
        assert "tocsin_triggers_claimed_total" not in triggerer.names()  # the server's metrics are not here
        server = scrape(f"http://127.0.0.1:{port}/metrics")
        assert server.value("tocsin_http_requests_total", operation="registerJob", status="201") == 1
        assert "tocsin_triggerer_held_triggers" not in server.names()
        children = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert wait_gone(children, 10) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _standalone(folder: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOCSIN, "standalone", "--port", str(free_port()), *flags],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test__a_metrics_port_in_use_or_out_of_range__is_one_line_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # where the triggerer would bind
        taken.listen()
        busy = taken.getsockname()[1]
        in_use = _standalone(tmp_path, "--metrics-port", str(busy))
    assert in_use.returncode == 1
    assert in_use.stdout + in_use.stderr == (
        f"tocsin standalone: port {busy} is in use by another program; pick another with --metrics-port\n"
    )
    out_of_range = _standalone(tmp_path, "--metrics-port", "70000")
    assert out_of_range.returncode == 2
    assert out_of_range.stderr == (
        "tocsin standalone: configuration error: --metrics-port 70000 is not a port (1-65535)\n"
    )
    assert not (tmp_path / "tocsin.db").exists()  # refused before migrating anything
