"""Builtin triggers: each fires on its condition, and each rebuilds from its serde-encoded kwargs."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from tocsin_client import ForbiddenError, NotFoundError, ServerError, serde, triggers
from tocsin_client.generated.models import Problem, TaskInstanceStateItem, TaskInstanceStateName
from tocsin_client.triggers import (
    BaseTrigger,
    DagRunStateTrigger,
    DateTimeTrigger,
    FileTrigger,
    HttpPollTrigger,
    TaskStateTrigger,
    TimeDeltaTrigger,
    TriggerEvent,
)
from tocsin_client.triggers.builtins import _lookup

MOMENT = datetime(2026, 11, 28, 10, tzinfo=UTC)


async def first_event(trigger: BaseTrigger, timeout: float = 5.0) -> TriggerEvent:
    async def first() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("run() ended without an event")

    return await asyncio.wait_for(first(), timeout)


def rebuild(trigger: BaseTrigger) -> BaseTrigger:
    """What a triggerer does with a stored trigger: import the classpath, decode the kwargs, call the class."""
    classpath, kwargs = trigger.serialize()
    stored = serde.loads(serde.dumps(kwargs))
    module_name, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    rebuilt = cls(**stored)
    assert isinstance(rebuilt, BaseTrigger)
    return rebuilt


@pytest.mark.parametrize(
    "trigger",
    [
        DateTimeTrigger(MOMENT),
        TimeDeltaTrigger(timedelta(minutes=5)),
        FileTrigger("/data/*.csv", poll_interval=2.5, recursive=True),
        HttpPollTrigger("http://svc/x", "POST", 202, "$.a.b", {"ok": True}, poll_interval=1),
        TaskStateTrigger("etl", "run_1", ["a", "b"], ["success", "skipped"], poll_interval=3),
        DagRunStateTrigger("etl", "run_1", ["failed"], poll_interval=4),
    ],
    ids=lambda trigger: type(trigger).__name__,
)
def test__serialize__names_the_public_classpath_and_rebuilds_the_same_trigger(trigger: BaseTrigger) -> None:
    classpath, kwargs = trigger.serialize()

    assert classpath == f"tocsin_client.triggers.{type(trigger).__name__}"
    assert getattr(triggers, type(trigger).__name__) is type(trigger)
    rebuilt = rebuild(trigger)
    assert type(rebuilt) is type(trigger)
    assert rebuilt.serialize() == (classpath, kwargs)


def test__task_state_trigger__without_task_ids__is_refused() -> None:
    with pytest.raises(ValueError, match="task id"):
        TaskStateTrigger("etl", "run_1", [])


def test__date_time_trigger__naive_moment__is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DateTimeTrigger(datetime(2026, 1, 1))


async def test__time_delta_trigger__fires_at_its_moment() -> None:
    delta = timedelta(milliseconds=150)
    started = time.monotonic()
    trigger = TimeDeltaTrigger(delta)

    event = await first_event(trigger)

    assert time.monotonic() - started >= delta.total_seconds() - 0.01
    assert datetime.now(UTC) >= trigger.moment
    assert event == TriggerEvent(trigger.moment)


async def test__time_delta_trigger__sleeps_once_instead_of_polling() -> None:
    trigger = TimeDeltaTrigger(timedelta(milliseconds=300))

    with mock.patch("asyncio.sleep", wraps=asyncio.sleep) as sleep:
        await first_event(trigger)

    # One sleep of the whole remaining time; a second, tiny one only if the wall clock lagged the monotonic one.
    assert 1 <= sleep.call_count <= 2
    assert 0.1 < sleep.call_args_list[0].args[0] <= 0.3


async def test__time_delta_trigger__rebuilt__keeps_its_moment() -> None:
    trigger = TimeDeltaTrigger(timedelta(hours=1))
    rebuilt = rebuild(trigger)

    assert isinstance(rebuilt, TimeDeltaTrigger)
    assert rebuilt.moment == trigger.moment


def test__time_delta_trigger__accepts_stored_kwargs_of_either_shape() -> None:
    assert TimeDeltaTrigger(moment=MOMENT).moment == MOMENT
    assert TimeDeltaTrigger(**serde.loads(b'{"delta": {"__classname__": "datetime.timedelta", "__data__": 60.0}}'))
    with pytest.raises(TypeError, match="needs a delta"):
        TimeDeltaTrigger()


async def test__date_time_trigger__past_moment__fires_at_once() -> None:
    with mock.patch("asyncio.sleep") as sleep:
        event = await first_event(DateTimeTrigger(MOMENT - timedelta(days=365)))

    sleep.assert_not_called()
    assert event.payload == MOMENT - timedelta(days=365)


async def test__file_trigger__fires_when_a_file_appears(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()  # a directory that matches is not a file
    trigger = FileTrigger(str(tmp_path / "*.csv"), poll_interval=0.01)
    waiting = asyncio.create_task(first_event(trigger))

    await asyncio.sleep(0.05)
    assert not waiting.done()
    (tmp_path / "b.csv").write_text("x")
    (tmp_path / "a.csv").write_text("x")

    event = await waiting
    assert event.payload in ([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], [str(tmp_path / "b.csv")])


async def test__file_trigger__recursive_glob(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "done.flag").write_text("")

    event = await first_event(FileTrigger(str(tmp_path / "**" / "*.flag"), poll_interval=0.01, recursive=True))

    assert event.payload == [str(tmp_path / "x" / "y" / "done.flag")]


def http_trigger(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> HttpPollTrigger:
    return HttpPollTrigger(
        "http://svc.test/status", poll_interval=0.001, transport=httpx.MockTransport(handler), **kwargs
    )


def sequence(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    remaining = list(responses)

    def handler(_: httpx.Request) -> httpx.Response:
        item = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


async def test__http_poll_trigger__fires_on_expected_status() -> None:
    handler = sequence(httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(204))

    event = await first_event(http_trigger(handler, expected_status=204))

    assert event.payload == {"status_code": 204, "value": None}


async def test__http_poll_trigger__waits_for_the_expected_json_value() -> None:
    handler = sequence(
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"job": {}}),
        httpx.Response(200, json={"job": {"state": "running"}}),
        httpx.Response(200, json={"job": {"state": "done"}}),
    )
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    event = await first_event(http_trigger(recording, method="HEAD", json_path="$.job.state", expected_value="done"))

    assert event.payload == {"status_code": 200, "value": "done"}
    assert len(seen) == 4
    assert {request.method for request in seen} == {"HEAD"}


async def test__http_poll_trigger__without_expected_value__fires_when_the_path_exists() -> None:
    handler = sequence(httpx.Response(200, json={"items": []}), httpx.Response(200, json={"items": [{"id": 7}]}))

    event = await first_event(http_trigger(handler, json_path="items.0.id"))

    assert event.payload == {"status_code": 200, "value": 7}


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        ({"a": {"b": [1, {"c": None}]}}, "$.a.b.1.c", (True, None)),
        ({"a": [1, 2]}, "a.-1", (True, 2)),
        ({"a": [1, 2]}, "a.2", (False, None)),
        ({"a": 1}, "a.b", (False, None)),
        ({"a": 1}, "$", (True, {"a": 1})),
        ([5], "0", (True, 5)),
    ],
)
def test__lookup__follows_dotted_paths(document: Any, path: str, expected: tuple[bool, Any]) -> None:
    assert _lookup(document, path) == expected


class FakeContext:
    """Stands in for TriggerContext: answers each poll from a script."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[Any, ...]] = []

    def _next(self) -> Any:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def get_task_states(self, task_ids: Any = None, *, dag_id: str, run_id: str) -> list[TaskInstanceStateItem]:
        self.calls.append((list(task_ids), dag_id, run_id))
        return [
            TaskInstanceStateItem(task_id=t, map_index=m, state=TaskInstanceStateName(s)) for t, m, s in self._next()
        ]

    async def get_dag_run_state(self, *, dag_id: str, run_id: str) -> str:
        self.calls.append((dag_id, run_id))
        return str(self._next())


def problem(status: int) -> Problem:
    return Problem(type="about:blank", title="x", status=status)


@pytest.fixture
def no_wait() -> Iterator[None]:
    real_sleep = asyncio.sleep

    async def tick(_: float) -> None:
        await real_sleep(0)

    with mock.patch("tocsin_client.triggers.builtins.asyncio.sleep", tick):
        yield


@pytest.mark.usefixtures("no_wait")
async def test__task_state_trigger__fires_when_every_task_is_in_a_target_state() -> None:
    context = FakeContext(
        [
            ServerError(503, problem(503)),
            [("a", -1, "success")],  # b has no task instance yet
            [("a", -1, "success"), ("b", 0, "success"), ("b", 1, "running")],
            [("a", -1, "success"), ("b", 0, "success"), ("b", 1, "skipped"), ("other", -1, "failed")],
        ]
    )
    trigger = TaskStateTrigger("etl", "run_1", ["a", "b"], ["success", "skipped"], poll_interval=5)
    trigger.context = context  # type: ignore[assignment]

    event = await first_event(trigger)

    assert event.payload == {
        "dag_id": "etl",
        "run_id": "run_1",
        "states": {"a": ["success"], "b": ["success", "skipped"]},
    }
    assert context.calls[0] == (["a", "b"], "etl", "run_1")
    assert len(context.calls) == 4


@pytest.mark.usefixtures("no_wait")
async def test__task_state_trigger__non_transient_error__fails_the_trigger() -> None:
    trigger = TaskStateTrigger("etl", "run_1", ["a"])
    trigger.context = FakeContext([ForbiddenError(403, problem(403))])  # type: ignore[assignment]

    with pytest.raises(ForbiddenError):
        await first_event(trigger)


@pytest.mark.usefixtures("no_wait")
async def test__dag_run_state_trigger__fires_on_a_target_state() -> None:
    context = FakeContext([NotFoundError(404, problem(404)), "queued", "running", "failed"])
    trigger = DagRunStateTrigger("etl", "run_1", ["success", "failed"])
    trigger.context = context  # type: ignore[assignment]

    event = await first_event(trigger)

    assert event.payload == {"dag_id": "etl", "run_id": "run_1", "state": "failed"}
    assert context.calls == [("etl", "run_1")] * 4


async def test__state_trigger__polls_at_its_interval() -> None:
    context = FakeContext(["running", "success"])
    trigger = DagRunStateTrigger("etl", "run_1", ["success"], poll_interval=0.05)
    trigger.context = context  # type: ignore[assignment]
    started = time.monotonic()

    await first_event(trigger)

    assert time.monotonic() - started >= 0.04


async def test__run__cancelled_while_waiting__stops_cleanly(tmp_path: Path) -> None:
    trigger = FileTrigger(str(tmp_path / "never"), poll_interval=0.01)
    waiting = asyncio.create_task(first_event(trigger))
    await asyncio.sleep(0.03)

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
