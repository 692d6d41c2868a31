"""Shared pieces of the end-to-end tests: a real API server process, real triggerer processes, polling helpers.

Nothing sleeps and hopes: every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from tocsin_client import Client, serde
from tocsin_client.generated.models import (
    DagRunBody,
    DeferredStateUpdate,
    RunningStateUpdate,
    TaskInstance,
    TaskInstanceBody,
)
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer, live_server
from tests.conftest import SECRET

P = "tests.triggerer.sample_triggers"
REPO = Path(__file__).resolve().parents[2]
FAST = {
    "TOCSIN_HEARTBEAT_INTERVAL_S": "0.5",
    "TOCSIN_LIVENESS_THRESHOLD_S": "30",
    "TOCSIN_CLEANUP_INTERVAL_S": "0.5",
    "TOCSIN_TIMEOUT_CHECK_INTERVAL_S": "0.5",
}


def poll(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        if value := predicate():
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(interval_s)


@dataclass
class Triggerer:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the triggerer did not exit within {timeout_s} s:\n{self.output()[-3000:]}")


@pytest.fixture
def start_server(clean_database: str, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    with contextlib.ExitStack() as stack:

        def start(**env: str) -> LiveServer:
            log = tmp_path / f"server-{len(env)}-{time.monotonic_ns()}.log"
            return stack.enter_context(live_server(clean_database, SECRET, log, {**FAST, **env}))

        yield start


@pytest.fixture
def start_triggerer(tmp_path: Path, authority: TokenAuthority) -> Iterator[Callable[..., Triggerer]]:
    started: list[Triggerer] = []

    def start(url: str, *flags: str, **extra_env: str) -> Triggerer:
        log = tmp_path / f"triggerer-{len(started)}.log"
        env = {**os.environ, "TOCSIN_TOKEN": authority.issue("e2e", ["triggerer"], 3600), **extra_env}
        command = [sys.executable, "-m", "tocsin_cli", "triggerer", "--api-url", url, "--grace-period", "10"]
        with log.open("wb") as sink:
            process = subprocess.Popen([*command, *flags], env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
        started.append(Triggerer(process, log))
        return started[-1]

    yield start
    for triggerer in started:
        if triggerer.process.poll() is None:
            triggerer.process.send_signal(signal.SIGCONT)
            triggerer.process.terminate()
            try:
                triggerer.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                triggerer.process.kill()
                triggerer.process.wait()


class Tasks:
    """Admin-side helpers: defer task instances and watch them."""

    def __init__(self, url: str, token: str) -> None:
        self.client = Client(url, token=token)
        self.client.create_dag_run(DagRunBody(dag_id="e2e", run_id="run"))
        self._n = 0

    def defer(self, classpath: str, kwargs: dict[str, Any], *, timeout_s: float | None = None) -> UUID:
        self._n += 1
        ti = self.client.create_task_instance(TaskInstanceBody(dag_id="e2e", run_id="run", task_id=f"t{self._n}"))
        self.client.update_task_instance_state(ti.id, RunningStateUpdate())
        body = DeferredStateUpdate(
            classpath=classpath,
            trigger_kwargs=serde.serialize(kwargs),
            next_method="execute_complete",
            trigger_timeout=timeout_s,
        )
        self.client.update_task_instance_state(ti.id, body)
        return ti.id

    def get(self, ti_id: UUID) -> TaskInstance:
        return self.client.get_task_instance(ti_id)

    def wait_state(self, ti_id: UUID, state: str, timeout_s: float = 20.0) -> TaskInstance:
        found: TaskInstance = poll(
            lambda: (ti := self.get(ti_id)).state.value == state and ti, timeout_s, f"{ti_id} {state}"
        )
        return found


@pytest.fixture
def tasks_for(authority: TokenAuthority) -> Iterator[Callable[[str], Tasks]]:
    made: list[Tasks] = []

    def make(url: str) -> Tasks:
        made.append(Tasks(url, authority.issue("e2e-admin", ["admin", "worker"], 3600)))
        return made[-1]

    yield make
    for tasks in made:
        tasks.client.close()


def in_seconds(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
