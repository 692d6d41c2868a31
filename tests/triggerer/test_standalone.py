"""``tocsin standalone`` as an operator runs it: started in a folder, the demo it suggests run as printed, and every
way of stopping it — one or two Ctrl-C, SIGTERM, SIGHUP, the terminal closing, SIGKILL — leaving no process behind."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.live_server import free_port
from tests.support.processes import children_of, wait_for_count, wait_for_output, wait_gone

pytestmark = pytest.mark.slow

TOCSIN = [sys.executable, "-m", "tocsin_cli"]


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}, **extra}


@dataclass
class Standalone:
    process: subprocess.Popen[bytes]
    log: Path
    port: int
    folder: Path

    def children(self) -> list[int]:
        return children_of(self.process.pid)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(folder: Path, *, env: dict[str, str] | None = None, port: int | None = None) -> Standalone:
    port = port or free_port()
    log = folder / f"standalone-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*TOCSIN, "standalone", "--port", str(port)],
            cwd=folder,
            env=env or clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    standalone = Standalone(process, log, port, folder)
    try:
        wait_for_output(log, "registered job", process, 60)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return standalone


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Standalone]:
    running = start(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()
    for pid in running.children():
        os.kill(pid, signal.SIGKILL)


def assert_nothing_listens(port: int) -> None:
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test__demo_printed_by_the_banner__runs_as_printed(standalone: Standalone) -> None:
    output = standalone.output()
    assert f"API:       http://127.0.0.1:{standalone.port}" in output
    assert f"docs:      http://127.0.0.1:{standalone.port}/docs" in output
    line = next(line for line in output.splitlines() if "try it:" in line)
    command = line.split("try it:", 1)[1].strip().replace("--tasks 100", "--tasks 50 --delay 3")
    assert f"--api-url http://127.0.0.1:{standalone.port}" in command  # a port other than the default
    demo = subprocess.run(
        ["bash", "-c", command],
        cwd=standalone.folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "resumed 50/50 tasks" in demo.stdout
    assert "fire-to-resume: p50" in demo.stdout
    assert "50/50 resumed" in demo.stderr  # the progress bar's last state


@pytest.mark.parametrize("signals", [("SIGINT",), ("SIGTERM",), ("SIGHUP",)])
def test__one_stop_signal__stops_the_triggerer_first_then_the_server_then_exits(
    standalone: Standalone, signals: tuple[str, ...]
) -> None:
    children = standalone.children()
    assert len(children) == 2
    standalone.process.send_signal(getattr(signal, signals[0]))
    assert standalone.process.wait(timeout=60) == 0
    assert wait_gone(children, 10) == []
    output = standalone.output()
    # the triggerer completed its job, which needs the API server still answering: it stopped first
    assert "job 1 completed" in output
    assert f"{signals[0]}: stopping the triggerer, then the API server" in output
    assert "Traceback" not in output
    assert_nothing_listens(standalone.port)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test__ctrl_c_stops_promptly_with_a_curl_watching_the_change_feed(standalone: Standalone) -> None:
    """uvicorn's graceful shutdown waits for every open answer; the watch stream ends at once instead."""
    token = subprocess.run(
        [*TOCSIN, "token", "create", "--scope", "worker"],
        cwd=standalone.folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    url = f"http://127.0.0.1:{standalone.port}/api/v1/task-instances/changes"
    headers = ["-H", f"Authorization: Bearer {token}", "-H", "Accept: text/event-stream"]
    with subprocess.Popen(["curl", "-sS", "-N", *headers, url], stdout=subprocess.PIPE) as watcher:
        assert watcher.stdout is not None
        assert watcher.stdout.readline() == b"event: bookmark\n"  # the stream is open
        began = time.monotonic()
        standalone.process.send_signal(signal.SIGINT)
        assert standalone.process.wait(timeout=30) == 0
        assert time.monotonic() - began < 10
        assert watcher.wait(timeout=10) == 0  # the stream ended cleanly, not cut
    assert "Traceback" not in standalone.output()


def test__two_ctrl_c_in_quick_succession__still_stop_both_children(standalone: Standalone) -> None:
    children = standalone.children()
    standalone.process.send_signal(signal.SIGINT)
    time.sleep(0.15)  # the operator's second key press, not a wait for a condition
    standalone.process.send_signal(signal.SIGINT)
    assert standalone.process.wait(timeout=60) == 0
    assert wait_gone(children, 10) == []
    assert_nothing_listens(standalone.port)


def test__the_terminal_closing__stops_both_children(tmp_path: Path) -> None:
    port = free_port()
    primary, secondary = os.openpty()

    def controlling_terminal() -> None:  # runs in the child after setsid: the pty becomes its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [*TOCSIN, "standalone", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
        preexec_fn=controlling_terminal,  # noqa: PLW1509 - runs before exec, touches only the pty
    )
    os.close(secondary)
    screen = bytearray()

    def read_screen() -> None:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while b"registered job" not in screen:
            assert time.monotonic() < deadline, screen.decode(errors="replace")
            assert process.poll() is None, screen.decode(errors="replace")
            time.sleep(0.05)
        children = children_of(process.pid)
        assert len(children) == 2
        os.close(primary)  # the terminal window closes: the kernel hangs up the session
        assert process.wait(timeout=60) == 0
        assert wait_gone(children, 10) == []
        assert_nothing_listens(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test__standalone_killed_outright__its_children_stop_too(standalone: Standalone) -> None:
    children = standalone.children()
    standalone.process.kill()
    standalone.process.wait()
    assert wait_gone(children, 30) == []


def test__a_triggerer_that_exits__is_started_again(standalone: Standalone) -> None:
    first_triggerer = max(standalone.children())  # started after the server
    os.kill(first_triggerer, signal.SIGKILL)
    output = wait_for_count(standalone.log, "registered job", 2, 60)
    assert "the triggerer exited with -9; starting it again" in output
    assert standalone.process.poll() is None
    assert first_triggerer not in standalone.children()
    assert len(standalone.children()) == 2


def test__restart_on_the_port_just_freed__starts(tmp_path: Path) -> None:
    import httpx

    first = start(tmp_path)
    with httpx.Client() as client:  # keep-alive connections the server closes first: TIME-WAIT on its port
        for _ in range(5):
            client.get(f"http://127.0.0.1:{first.port}/health")
        first.process.send_signal(signal.SIGINT)
        assert first.process.wait(timeout=60) == 0
    second = start(tmp_path, port=first.port)
    try:
        assert "is in use" not in second.output()
    finally:
        second.process.send_signal(signal.SIGTERM)
        second.process.wait(timeout=60)


def test__a_port_really_in_use__is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*TOCSIN, "standalone", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"tocsin standalone: 127.0.0.1:{port} is in use by another program; pick another port with --port"
    ]


def test__demo__without_a_token_or_secret__explains_what_to_pass(tmp_path: Path) -> None:
    result = subprocess.run(
        [*TOCSIN, "demo", "--tasks", "1"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "pass --token" in result.stderr


def wait_until_all_claimed(running: Standalone, count: int, timeout_s: float = 60) -> None:
    import httpx

    token = subprocess.run(
        [*TOCSIN, "token", "create", "--scope", "admin"],
        cwd=running.folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"http://127.0.0.1:{running.port}/api/v1/triggers",
            headers={"Authorization": f"Bearer {token}"},
            params={"limit": 1000},
        ).json()
        if sum(trigger["triggerer_id"] is not None for trigger in answer["triggers"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the triggerer did not claim {count} triggers within {timeout_s} s")


def test__an_outage_longer_than_the_liveness_threshold__every_task_still_resumes(tmp_path: Path) -> None:
    """A laptop that slept: the triggerer is frozen longer than the server waits for its heartbeat, so the server
    ends its lease. No one restarts anything by hand, and every deferred task still resumes."""
    quick_leases = {
        "TOCSIN_HEARTBEAT_INTERVAL_S": "0.5",
        "TOCSIN_LIVENESS_THRESHOLD_S": "2",
        "TOCSIN_TIMEOUT_CHECK_INTERVAL_S": "0.5",
    }
    running = start(tmp_path, env=clean_env(**quick_leases))
    triggerer = max(running.children())
    demo = subprocess.Popen(
        [*TOCSIN, "demo", "--tasks", "30", "--delay", "4", "--timeout", "90"],
        cwd=tmp_path,
        env=clean_env(TOCSIN_API_URL=f"http://127.0.0.1:{running.port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_all_claimed(running, 30)
        os.kill(triggerer, signal.SIGSTOP)
        time.sleep(5)  # the outage itself: longer than the 2 s liveness threshold, by design
        os.kill(triggerer, signal.SIGCONT)
        stdout, stderr = demo.communicate(timeout=120)
        assert demo.returncode == 0, stdout + stderr
        assert "resumed 30/30 tasks" in stdout
        # the lease really ended: the work was picked up by a new job, registered without anyone's help
        assert running.output().count("registered job") >= 2, running.output()[-3000:]
        assert running.process.poll() is None, "the standalone must carry on"
        assert len(running.children()) == 2
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=60)
