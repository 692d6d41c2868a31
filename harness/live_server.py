"""A real ``tocsin api-server`` process, for tests that need real sockets (races, curl, CLI)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class LiveServer:
    url: str
    env: dict[str, str]
    log: Path
    pid: int = 0
    """The server process (for tests that signal or kill it)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    msg = f"the server at {url} was not ready within {deadline_s} s:\n{log.read_text()[-3000:]}"
    raise RuntimeError(msg)


@contextmanager
def live_server(
    database_url: str, secret: str, log: Path, extra_env: dict[str, str] | None = None, ready_within_s: float = 30.0
) -> Iterator[LiveServer]:
    port = free_port()
    env = {
        **os.environ,
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_JWT_SECRET": secret,
        **(extra_env or {}),
    }
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tocsin_cli", "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(url, process, log, ready_within_s)
        yield LiveServer(url=url, env=env, log=log, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
