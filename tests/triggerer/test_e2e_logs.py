"""End to end (real API server, real triggerer, SQLite and PostgreSQL): trigger log lines and their one limit.

The server is the one place that applies ``TOCSIN_MAX_LOG_LINE_BYTES``: a longer line is cut there, with a
visible marker and ``truncated: true``. The triggerer ships lines whole, in requests sized to the server's body
limit, so a long line never makes the lines around it fail.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from harness.live_server import LiveServer
from tests.triggerer.e2e_support import P, Triggerer

pytestmark = pytest.mark.slow


def _lines(tasks: Any, ti_id: Any) -> list[Any]:
    return list(tasks.client.get_task_instance_logs(ti_id).lines)


def _stop(triggerer: Triggerer) -> None:
    triggerer.process.send_signal(signal.SIGTERM)
    assert triggerer.wait(20) == 0  # every line shipped before the job completed


@pytest.mark.parametrize(
    ("size", "char", "received_bytes"),
    [
        (20_000, "é", 40_000),  # over the server's limit
        (400_000, "é", 800_000),  # several requests' worth of neighbours would not fit beside it
        (1_500_000, "x", None),  # over what one request carries: the triggerer cuts it first, the server again
    ],
)
def test__a_line_over_the_server_limit__is_cut_there_with_a_marker_and_its_neighbours_arrive(
    start_server: Callable[..., LiveServer],
    start_triggerer: Callable[..., Triggerer],
    tasks_for: Any,
    size: int,
    char: str,
    received_bytes: int | None,
) -> None:
    server = start_server()  # the default limit: 16 KiB
    tasks = tasks_for(server.url)
    ti_id = tasks.defer(f"{P}.LongLines", {"size": size, "char": char})
    triggerer = start_triggerer(server.url)
    tasks.wait_state(ti_id, "scheduled")
    _stop(triggerer)
    events = [line.event for line in _lines(tasks, ti_id)]
    assert "before the long line" in events
    assert "after the long line" in events
    [long] = [line for line in _lines(tasks, ti_id) if line.event.startswith(char * 2)]
    assert long.truncated is True
    assert len(long.event.encode()) <= 16_384
    assert long.event.endswith(" bytes]")
    assert " ...[cut at TOCSIN_MAX_LOG_LINE_BYTES=16384: the line had " in long.event
    if received_bytes is not None:
        assert f"the line had {received_bytes} bytes" in long.event  # the server had the whole line


def test__a_line_under_the_server_limit__arrives_whole_even_past_8000_characters(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server(TOCSIN_MAX_LOG_LINE_BYTES="100000")
    tasks = tasks_for(server.url)
    ti_id = tasks.defer(f"{P}.LongLines", {"size": 50_000})
    triggerer = start_triggerer(server.url)
    tasks.wait_state(ti_id, "scheduled")
    _stop(triggerer)
    [long] = [line for line in _lines(tasks, ti_id) if line.event.startswith("xx")]
    assert long.event == "x" * 50_000
    assert long.truncated is False


def test__a_trigger_that_raises__ships_the_exception_and_its_traceback_to_its_log(
    start_server: Callable[..., LiveServer], start_triggerer: Callable[..., Triggerer], tasks_for: Any
) -> None:
    server = start_server()
    tasks = tasks_for(server.url)
    ti_id = tasks.defer(f"{P}.LoggedRaise", {})
    triggerer = start_triggerer(server.url)
    ti = tasks.wait_state(ti_id, "scheduled")
    assert ti.next_method == "__fail__"
    _stop(triggerer)
    [line] = [line for line in _lines(tasks, ti_id) if "raised" in line.event]
    assert line.level == "error"
    assert "Traceback (most recent call last)" in line.event
    assert "sample_triggers.py" in line.event
    assert line.event.startswith("trigger 1 raised LookupError: the thing is not there\n")
    assert line.event.endswith("LookupError: the thing is not there")
