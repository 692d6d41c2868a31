"""TriggerHost in-process: events, and each bad input ending as a failure of that trigger alone."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from tocsin_client import AsyncClient, serde
from tocsin_client.generated.models import RunTrigger, WorkloadTaskInstance
from tocsin_client.triggerer._frames import EventOut, FailureOut, LogLine
from tocsin_client.triggerer._host import TriggerHost
from tocsin_client.triggerer._reporter import TriggerLogHandler

P = "tests.triggerer.sample_triggers"


class ListSink:
    def __init__(self) -> None:
        self.events: list[EventOut] = []
        self.failures: list[FailureOut] = []
        self.done_ids: list[int] = []
        self.logs: list[LogLine] = []
        self.changed = asyncio.Event()

    def event(self, event: EventOut) -> None:
        self.events.append(event)
        self.changed.set()

    def failure(self, failure: FailureOut) -> None:
        self.failures.append(failure)
        self.changed.set()

    def finished(self, trigger_id: int) -> None:
        self.done_ids.append(trigger_id)
        self.changed.set()

    def log(self, line: LogLine) -> None:
        self.logs.append(line)

    async def until(self, predicate: Any, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def workload(trigger_id: int, classpath: str, kwargs: dict[str, Any], *, with_task: bool = True) -> RunTrigger:
    ti = WorkloadTaskInstance(
        id=UUID(int=trigger_id),
        dag_id="dag",
        run_id="run",
        task_id="t",
        map_index=-1,
        try_number=1,
        next_method="execute_complete",
    )
    return RunTrigger(
        trigger_id=trigger_id,
        classpath=classpath,
        kwargs=serde.serialize(kwargs),
        timeout_at=None,
        task_instance=ti if with_task else None,
        token=f"ti-{trigger_id}",
    )


@pytest.fixture
async def host() -> Any:
    client = AsyncClient("http://tocsin.test")
    sink = ListSink()
    yield TriggerHost(sink, lambda _id, token: client.with_token(token)), sink
    await client.aclose()


async def test__start__time_trigger_in_the_past__reports_one_event_then_finishes(host: Any) -> None:
    runner, sink = host
    moment = datetime.now(UTC) - timedelta(seconds=1)
    runner.start(workload(1, "tocsin_client.triggers.DateTimeTrigger", {"moment": moment}))
    await sink.until(lambda: sink.done_ids == [1])
    assert [e.trigger_id for e in sink.events] == [1]
    event = sink.events[0]
    assert event.event_type == "resume"
    assert serde.deserialize(event.payload) == moment
    assert len(event.event_id) == 32
    assert sink.failures == []
    assert len(runner) == 0


async def test__time_trigger__sleeps_until_its_moment(host: Any) -> None:
    runner, sink = host
    moment = datetime.now(UTC) + timedelta(seconds=0.3)
    runner.start(workload(1, "tocsin_client.triggers.DateTimeTrigger", {"moment": moment}))
    await sink.until(lambda: sink.events)
    assert datetime.now(UTC) >= moment
    assert datetime.now(UTC) - moment < timedelta(seconds=0.2)


@pytest.mark.parametrize(
    ("classpath", "kwargs", "reason"),
    [
        ("no_such_module.Trigger", {}, "cannot import trigger class no_such_module.Trigger: ModuleNotFoundError"),
        (f"{P}.Missing", {}, f"cannot import trigger class {P}.Missing: AttributeError"),
        (f"{P}.NotATrigger", {}, "is not a BaseTrigger subclass"),
        ("tocsin_client.triggers.DateTimeTrigger", {"when": 1}, "cannot build tocsin_client.triggers.DateTimeTrigger"),
        (f"{P}.Silent", {}, "ended without yielding an event"),
        (f"{P}.Garbage", {}, "yielded a payload that cannot be sent"),
        (f"{P}.NotAnEvent", {}, "yielded 'int', not a TriggerEvent"),
        (f"{P}.NotAGenerator", {}, "must be an async generator"),
    ],
)
async def test__bad_trigger__ends_as_a_failure_of_that_trigger_alone(
    host: Any, classpath: str, kwargs: dict[str, Any], reason: str
) -> None:
    runner, sink = host
    runner.start(workload(1, f"{P}.Never", {}))
    runner.start(workload(2, classpath, kwargs))
    runner.start(workload(3, f"{P}.FireNow", {}))
    await sink.until(lambda: len(sink.failures) == 1 and len(sink.events) == 1)
    assert sink.failures[0].trigger_id == 2
    assert reason in sink.failures[0].error
    assert [e.trigger_id for e in sink.events] == [3]
    assert 1 in runner  # the good, waiting trigger is still running
    await runner.stop()


async def test__kwargs_naming_a_class_outside_the_allowlist__fail_without_importing(host: Any) -> None:
    runner, sink = host
    bad = workload(1, f"{P}.FireNow", {})
    bad.kwargs = {"x": {"__classname__": "os.system", "__data__": {}}}
    runner.start(bad)
    await sink.until(lambda: sink.failures)
    assert "not in the allowed deserialization classes" in sink.failures[0].error


async def test__raising_trigger__reports_error_and_traceback(host: Any) -> None:
    runner, sink = host
    runner.start(workload(1, f"{P}.Raising", {}))
    await sink.until(lambda: sink.failures)
    failure = sink.failures[0]
    assert failure.error == "ValueError: boom"
    assert failure.traceback[0] == "Traceback (most recent call last):"
    assert any("sample_triggers.py" in line for line in failure.traceback)


async def test__cancel__runs_cleanup_and_reports_nothing(host: Any, tmp_path: Any) -> None:
    runner, sink = host
    marker = tmp_path / "cleaned"
    runner.start(workload(1, f"{P}.Cleanup", {"marker": str(marker)}))
    await asyncio.sleep(0.05)
    runner.cancel(1)
    assert 1 not in runner
    async with asyncio.timeout(5):
        while not marker.exists():
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert marker.read_text() == "cleaned"
    assert sink.events == [] and sink.failures == [] and sink.done_ids == []


async def test__watcher_trigger_without_task__keeps_yielding_events(host: Any) -> None:
    runner, sink = host
    runner.start(workload(1, f"{P}.Watcher", {"count": 3}, with_task=False))
    await sink.until(lambda: sink.done_ids)
    assert [serde.deserialize(e.payload) for e in sink.events] == [0, 1, 2]
    assert len({e.event_id for e in sink.events}) == 3


async def test__trigger_with_task__stops_after_its_first_event(host: Any) -> None:
    runner, sink = host
    runner.start(workload(1, f"{P}.Watcher", {"count": 3}))
    await sink.until(lambda: sink.done_ids)
    assert len(sink.events) == 1


async def test__terminal_event__carries_its_event_type(host: Any) -> None:
    runner, sink = host
    runner.start(workload(1, f"{P}.Terminal", {}))
    await sink.until(lambda: sink.events)
    assert sink.events[0].event_type == "task_success"
    assert sink.events[0].payload == "success"


async def test__log_lines_inside_a_trigger__carry_its_id_and_task_instance(
    host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    runner, sink = host
    handler = TriggerLogHandler(sink)
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("outside").warning("not a trigger's line")
        runner.start(workload(7, f"{P}.Logging", {}))
        await sink.until(lambda: sink.done_ids)
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [line for line in sink.logs if line.message == "hello from trigger"]
    assert len(lines) == 1
    assert lines[0].trigger_id == 7
    assert lines[0].task_instance_id == str(UUID(int=7))
    assert lines[0].try_number == 1
    assert all(line.message != "not a trigger's line" for line in sink.logs)


async def test__start_twice__runs_the_trigger_once(host: Any) -> None:
    runner, _ = host
    runner.start(workload(1, f"{P}.Never", {}))
    runner.start(workload(1, f"{P}.Never", {}))
    assert len(runner) == 1
    await runner.stop()
    assert len(runner) == 0
