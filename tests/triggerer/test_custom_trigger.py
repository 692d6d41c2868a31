"""docs/triggers.md end to end: a trigger in the user's own module, run by a real triggerer, on both databases.

The way a user goes: ``tocsin api-server`` and ``tocsin triggerer`` as processes, the triggerer started in a folder
of its own with ``PYTHONPATH`` pointing at the module's folder and ``--allow`` for the module's kwargs class; the
task instance deferred with ``Client.defer_task_instance`` on a trigger object; the task sees the event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from tocsin_client import Client, serde
from tocsin_client.generated.models import (
    DagRunBody,
    RunningStateUpdate,
    TaskInstance,
    TaskInstanceBody,
    TaskInstanceStateName,
    VariableBody,
)
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer, live_server
from tests.conftest import SECRET

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
TOCSIN = Path(sys.executable).with_name("tocsin")  # the console script the README runs
FAST = {"TOCSIN_HEARTBEAT_INTERVAL_S": "0.5", "TOCSIN_CLEANUP_INTERVAL_S": "0.5"}


LOGS: list[Path] = []  # the processes' logs of the running test, shown when a wait fails


def poll(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}" for log in LOGS)
            pytest.fail(f"not within {timeout_s} s: {what}{tails}")
        time.sleep(0.05)
    return value


@pytest.fixture
def my_triggers(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The user's module, imported the way their task code would import it."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import my_triggers  # type: ignore[import-not-found]

    return my_triggers


@pytest.fixture
def server(clean_database: str, tmp_path: Path) -> Iterator[LiveServer]:
    LOGS[:] = [tmp_path / "server.log"]
    with live_server(clean_database, SECRET, LOGS[0], FAST) as running:
        yield running


@pytest.fixture
def start_triggerer(
    server: LiveServer, authority: TokenAuthority, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> subprocess.Popen[bytes]:
        # A folder of its own: the module is found through PYTHONPATH, not because it sits in the working directory.
        workdir = tmp_path / f"triggerer-{len(started)}"
        workdir.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": str(EXAMPLES),
            "TOCSIN_API_URL": server.url,
            "TOCSIN_TOKEN": authority.issue("custom-trigger-e2e", ["triggerer"], 3600),
        }
        LOGS.append(workdir / "triggerer.log")
        with LOGS[-1].open("wb") as sink:
            process = subprocess.Popen(
                [str(TOCSIN), "triggerer", "--grace-period", "5", *flags],
                cwd=workdir,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def admin(server: LiveServer, authority: TokenAuthority) -> Iterator[Client]:
    with Client(server.url, token=authority.issue("custom-trigger-admin", ["admin", "worker"], 3600)) as client:
        client.create_dag_run(DagRunBody(dag_id="release", run_id="manual_1"))
        yield client


def running_task(client: Client, task_id: str) -> UUID:
    ti = client.create_task_instance(TaskInstanceBody(dag_id="release", run_id="manual_1", task_id=task_id))
    client.update_task_instance_state(ti.id, RunningStateUpdate())
    return ti.id


def wait_state(client: Client, ti_id: UUID, state: TaskInstanceStateName, timeout_s: float = 60.0) -> TaskInstance:
    found: TaskInstance = poll(
        lambda: (ti := client.get_task_instance(ti_id)).state is state and ti, timeout_s, f"{ti_id} {state}"
    )
    return found


def test__custom_trigger__resumes_the_task_with_its_event_and_can_end_it(
    admin: Client, start_triggerer: Callable[..., subprocess.Popen[bytes]], my_triggers: Any
) -> None:
    interval = timedelta(seconds=0.1)
    waiting = running_task(admin, "wait_for_release")
    skipping = running_task(admin, "skip_on_cancel")
    deferred = admin.defer_task_instance(
        waiting,
        my_triggers.VariableTrigger(my_triggers.Expected("release", "go"), poll_interval=interval),
        next_method="resume_after_release",
        next_kwargs={"attempt": 1},
        trigger_timeout=timedelta(minutes=10),
    )
    admin.defer_task_instance(
        skipping,
        my_triggers.VariableTrigger(
            my_triggers.Expected("release2", "go"), poll_interval=interval, skip_value="cancel"
        ),
    )
    assert deferred.state is TaskInstanceStateName.deferred
    assert deferred.trigger_timeout is not None

    triggerer = start_triggerer("--allow", "my_triggers.*")
    poll(lambda: all(t.triggerer_id for t in admin.list_triggers().triggers), 60, "both triggers claimed")
    assert triggerer.poll() is None
    assert admin.get_task_instance(waiting).state is TaskInstanceStateName.deferred  # it waits: nothing set yet

    admin.put_variable("release", VariableBody(value="go"))
    admin.put_variable("release2", VariableBody(value="cancel"))

    resumed = wait_state(admin, waiting, TaskInstanceStateName.scheduled)
    assert resumed.next_method == "resume_after_release"
    assert resumed.next_kwargs is not None
    kwargs = serde.deserialize(resumed.next_kwargs)
    assert kwargs["attempt"] == 1
    assert kwargs["event"]["key"] == "release"
    assert kwargs["event"]["value"] == "go"
    assert isinstance(kwargs["event"]["seen_at"], datetime)
    ended = wait_state(admin, skipping, TaskInstanceStateName.skipped)
    assert ended.next_method is None


def test__custom_trigger__without_allow__fails_the_task_naming_the_class(
    admin: Client, start_triggerer: Callable[..., subprocess.Popen[bytes]], my_triggers: Any
) -> None:
    ti_id = running_task(admin, "forgot_allow")
    admin.defer_task_instance(ti_id, my_triggers.VariableTrigger(my_triggers.Expected("release", "go")))

    start_triggerer()

    ti = wait_state(admin, ti_id, TaskInstanceStateName.scheduled)
    assert ti.next_method == "__fail__"
    assert ti.next_kwargs is not None
    assert "my_triggers.Expected" in ti.next_kwargs["error"]
    assert "allowed" in ti.next_kwargs["error"]
