"""End to end (real API server, real triggerer, SQLite and PostgreSQL): task instances that start from a trigger.

The engine hands tocsin task instances that never ran, in one SDK call each (``defer_task_instance`` with
``start_from_trigger=True``); the triggerer runs their triggers, one ends its task in success with its XComs, the
other resumes its task to a worker. No worker takes either before its trigger fires; the change log records it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from tocsin_client import serde
from tocsin_client.generated.models import TaskInstanceBody

from harness.live_server import LiveServer
from tests.integration.orchestration import sql
from tests.triggerer.e2e_support import Triggerer
from tests.triggerer.sample_triggers import FireNow, TerminalWithXComs

pytestmark = pytest.mark.slow


def _transitions(url: str, ti_id: uuid.UUID) -> list[tuple[str, str, str]]:
    rows = sql(url, "SELECT version, task_instance_id, previous_state, state, reason FROM task_instance_change")
    rows.sort(key=lambda row: int(row[0]))

    def text(stored: Any) -> uuid.UUID:
        return uuid.UUID(bytes=stored) if isinstance(stored, bytes) else uuid.UUID(str(stored))

    return [(row[2], row[3], row[4]) for row in rows if text(row[1]) == ti_id]


def test__tasks_started_from_a_trigger__end_in_success_with_xcoms_or_resume_to_a_worker(
    clean_database: str,
    start_server: Callable[..., LiveServer],
    start_triggerer: Callable[..., Triggerer],
    tasks_for: Any,
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    client = tasks.client
    finished_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    ends = client.create_task_instance(TaskInstanceBody(dag_id="e2e", run_id="run", task_id="ends"))
    resumes = client.create_task_instance(TaskInstanceBody(dag_id="e2e", run_id="run", task_id="resumes"))

    started = client.defer_task_instance(
        ends.id,
        TerminalWithXComs(xcoms={"return_value": {"rows": 42}, "finished_at": finished_at}),
        start_from_trigger=True,
    )
    client.defer_task_instance(resumes.id, FireNow(value=7), next_kwargs={"n": 1}, start_from_trigger=True)
    assert (started.state.value, started.start_from_trigger, started.try_number) == ("deferred", True, 1)
    triggerer = start_triggerer(server.url)

    ended = tasks.wait_state(ends.id, "success")
    assert (ended.start_from_trigger, ended.try_number, ended.next_method) == (True, 1, None)
    rows = client.get_xcom("e2e", "run", "ends", "return_value")
    assert serde.deserialize(rows.value) == {"rows": 42}
    assert serde.deserialize(client.get_xcom("e2e", "run", "ends", "finished_at").value) == finished_at
    resumed = tasks.wait_state(resumes.id, "scheduled")
    assert resumed.next_method == "execute_complete"
    assert resumed.next_kwargs == {"n": 1, "event": {"value": 7}}

    assert _transitions(clean_database, ends.id) == [("none", "deferred", "deferred"), ("deferred", "success", "ended")]
    assert _transitions(clean_database, resumes.id) == [
        ("none", "deferred", "deferred"),
        ("deferred", "scheduled", "resumed"),
    ]
    assert not re.search(r"\b403\b", triggerer.output())  # a whole number: a log line's timestamp may hold 403
    assert triggerer.process.poll() is None
