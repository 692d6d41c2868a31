"""``tocsin standalone`` and ``tocsin demo`` as the README says: one command, then the demo, then Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.live_server import free_port

pytestmark = pytest.mark.slow


def _read_until(path: Path, text: str, process: subprocess.Popen[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace") if path.exists() else ""
        if text in output:
            return output
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before printing {text!r}:\n{output[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"{text!r} not printed within {timeout_s} s")


def test__standalone_then_demo_then_ctrl_c__all_tasks_resume_and_both_processes_stop(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
    log = tmp_path / "standalone.log"
    with log.open("wb") as sink:
        standalone = subprocess.Popen(
            [sys.executable, "-m", "tocsin_server.cli", "standalone", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        output = _read_until(log, "registered job", standalone, 60)
        assert f"API:       http://127.0.0.1:{port}" in output
        assert f"docs:      http://127.0.0.1:{port}/docs" in output
        demo = subprocess.run(
            [sys.executable, "-m", "tocsin_server.cli", "demo", "--tasks", "50", "--delay", "3"],
            cwd=tmp_path,
            env={**env, "TOCSIN_API_URL": f"http://127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "resumed 50/50 tasks" in demo.stdout
        assert "fire-to-resume: p50" in demo.stdout
        assert "50/50 resumed" in demo.stderr  # the progress bar's last state
        standalone.send_signal(signal.SIGINT)
        assert standalone.wait(timeout=60) == 0
        output = log.read_text()
        assert "job 1 completed" in output
    finally:
        if standalone.poll() is None:
            standalone.kill()
            standalone.wait()
    # nothing left listening on the port: the API server child stopped too
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test__demo__without_a_token_or_secret__explains_what_to_pass(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
    result = subprocess.run(
        [sys.executable, "-m", "tocsin_server.cli", "demo", "--tasks", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "pass --token" in result.stderr
