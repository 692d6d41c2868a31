"""End to end (real API server, real triggerer, SQLite and PostgreSQL): a terminal event carries its XComs.

The XComs travel inside the event, so the server applies them and the state change in one transaction; the
triggerer never pushes them itself (its task-instance token may not write them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from tocsin_client import serde

from harness.live_server import LiveServer
from tests.triggerer.e2e_support import P, Triggerer

pytestmark = pytest.mark.slow


def test__task_success_event_with_xcoms__ends_the_task_in_success_with_its_xcoms_readable(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    finished_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    xcoms = {"return_value": {"rows": 42}, "finished_at": finished_at}
    ti_id = tasks.defer(f"{P}.TerminalWithXComs", {"xcoms": xcoms})
    triggerer = start_triggerer(server.url)

    ti = tasks.wait_state(ti_id, "success")
    assert ti.next_method != "__fail__", ti.next_kwargs
    rows = tasks.client.get_xcom(ti.dag_id, ti.run_id, ti.task_id, "return_value")
    assert serde.deserialize(rows.value) == {"rows": 42}
    finished = tasks.client.get_xcom(ti.dag_id, ti.run_id, ti.task_id, "finished_at")
    assert serde.deserialize(finished.value) == finished_at
    assert not re.search(r"\b403\b", triggerer.output())  # a whole number: a log line's timestamp may hold 403
    assert triggerer.process.poll() is None
