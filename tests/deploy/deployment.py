"""The deployment of docs/deploy/, run as its files say: the systemd units' commands and variables, haproxy's
configuration, a PostgreSQL of the test's own.

Only places change: the install path of ``tocsin``, the configuration folder, the ports (``replace`` below).
What systemd would do beyond running the command (the account, the sandboxing) is not done here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from harness.systemd_units import Unit

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "deploy"
DOC_BINARY = "/opt/tocsin/venv/bin/tocsin"
DOC_CONFIG = "/etc/tocsin/"
DOC_BALANCER = "127.0.0.1:8080"
DOCUMENTED_PLACES = (DOC_BINARY, DOC_CONFIG, DOC_BALANCER)
MIGRATE_UNIT = "tocsin-migrate.service"
API_SERVER_UNIT = "tocsin-api-server@.service"
TRIGGERER_UNIT = "tocsin-triggerer@.service"


def poll(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    """The first truthy value of ``predicate()``; AssertionError naming ``what`` past the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        if value := predicate():
            return value
        if time.monotonic() > deadline:
            msg = f"not within {timeout_s} s: {what}"
            raise AssertionError(msg)
        time.sleep(interval_s)


def status_of(url: str) -> int | None:
    """The status of ``GET url``, or None when nothing answered."""
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.TransportError:
        return None


def query(dsn: str, sql: str, *args: object) -> list[asyncpg.Record] | None:
    """Rows of one statement, or None while the database does not answer (it is being restarted)."""

    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn, timeout=5)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    try:
        return asyncio.run(run())
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None


def execute(dsn: str, sql: str) -> None:
    """Run ``sql`` (several statements may follow each other)."""

    async def run() -> None:
        connection = await asyncpg.connect(dsn, timeout=5)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@dataclass
class Service:
    """One instance of a unit, run the way systemd runs its ExecStart; restarted as ``Restart=always`` would."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.log.parent,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pids.append(self.process.pid)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the process dies mid-request, as in a crash or an out-of-memory kill."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM, as ``systemctl stop`` sends."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None when it was still running at the deadline and had to be killed (TimeoutStopSec)."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the triggerer's runners go too
            self.process.wait()
            return None

    def stop(self, timeout_s: float) -> int | None:
        self.terminate()
        return self.wait(timeout_s)


class Site:
    """The test's stand-ins for what an operator writes: /etc/tocsin's files and the install path."""

    def __init__(self, folder: Path, *, balancer: str, files: Mapping[str, Mapping[str, str] | str]) -> None:
        self.folder = folder
        self.config = folder / "etc"
        self.config.mkdir(parents=True)
        self.env_files: dict[Path, dict[str, str]] = {}
        for name, content in files.items():
            path = self.config / name
            if isinstance(content, str):
                path.write_text(content + "\n")
            else:
                path.write_text("".join(f"{key}={value}\n" for key, value in content.items()))
                self.env_files[path] = dict(content)
            path.chmod(0o600)
        binary = Path(sys.executable).parent / "tocsin"
        assert binary.exists(), f"{binary} is missing: scripts/bootstrap.sh dev installs the tocsin command"
        self.replace = {DOC_BINARY: str(binary), DOC_CONFIG: f"{self.config}/", DOC_BALANCER: balancer}

    def service(self, unit_name: str, *, instance: str = "", key: str = "ExecStart") -> Service:
        unit = Unit.read(DOCS / unit_name)
        command = unit.command(key, instance=instance, replace=self.replace)
        environment: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        environment.update(command.environment)
        for path in command.environment_files:  # systemd: a file's variables win over Environment='s
            assert path in self.env_files, f"{unit_name} reads {path}, which the test did not write"
            environment.update(self.env_files[path])
        for value in [*command.argv, *command.environment.values(), *map(str, command.environment_files)]:
            left = [place for place in DOCUMENTED_PLACES if place in value]
            assert not left, f"{unit_name}: {value!r} still names {left}: the test must stand in for it"
        label = unit_name.replace("@.service", f"@{instance}").removesuffix(".service")
        return Service(label, command.argv, environment, self.folder / f"{label}.log")
