"""Trigger events and BaseTrigger: event types, equality, the context, the authoring contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from tocsin_client import AsyncClient, triggers
from tocsin_client.triggers import (
    BaseTrigger,
    TaskFailedEvent,
    TaskSkippedEvent,
    TaskSuccessEvent,
    TriggerContext,
    TriggerEvent,
)


class CountingTrigger(BaseTrigger):
    def __init__(self, count: int) -> None:
        self.count = count
        self.cleaned = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{__name__}.CountingTrigger", {"count": self.count}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        for n in range(self.count):
            yield TriggerEvent(n)
        yield TaskSuccessEvent(xcoms={"total": self.count})

    async def cleanup(self) -> None:
        self.cleaned = True


def test__trigger_event__resumes_with_its_payload() -> None:
    event = TriggerEvent({"status": "done"})
    assert event.payload == {"status": "done"}
    assert event.event_type == "resume"
    assert not event.terminal
    assert event == TriggerEvent({"status": "done"})
    assert event != TriggerEvent({"status": "other"})
    assert repr(event) == "TriggerEvent(payload={'status': 'done'})"


@pytest.mark.parametrize(
    ("cls", "event_type", "state"),
    [
        (TaskSuccessEvent, "task_success", "success"),
        (TaskFailedEvent, "task_failed", "failed"),
        (TaskSkippedEvent, "task_skipped", "skipped"),
    ],
)
def test__task_end_events__are_terminal_and_carry_xcoms(
    cls: type[triggers.TaskEndEvent], event_type: str, state: str
) -> None:
    event = cls(xcoms={"rows": 3})
    assert event.event_type == event_type
    assert event.terminal
    assert event.payload == state
    assert event.xcoms == {"rows": 3}
    assert cls().xcoms is None
    assert event == cls(xcoms={"rows": 3})
    assert event != TriggerEvent(state)


def test__base_trigger__is_abstract() -> None:
    with pytest.raises(TypeError):
        BaseTrigger()  # type: ignore[abstract]


def test__base_trigger__context_before_the_runner_sets_it__raises() -> None:
    with pytest.raises(RuntimeError, match="no context"):
        _ = CountingTrigger(1).context


async def test__base_trigger__context_is_set_by_the_runner() -> None:
    trigger = CountingTrigger(1)
    async with AsyncClient(
        "http://tocsin.test", transport=httpx.MockTransport(lambda _: httpx.Response(500))
    ) as client:
        context = TriggerContext(client=client)
        trigger.context = context
        assert trigger.context is context


async def test__subclass__runs_as_an_async_generator_and_cleans_up() -> None:
    trigger = CountingTrigger(2)
    events = [event async for event in trigger.run()]
    await trigger.cleanup()

    assert events == [TriggerEvent(0), TriggerEvent(1), TaskSuccessEvent(xcoms={"total": 2})]
    assert trigger.cleaned
    assert repr(trigger) == f"<{__name__}.CountingTrigger {{'count': 2}}>"


async def test__default_cleanup__does_nothing() -> None:
    trigger = triggers.TimeDeltaTrigger(timedelta(0))
    await trigger.cleanup()  # a builtin holds nothing; the default hook must be awaitable and harmless


def test__exported_members__are_pinned() -> None:
    assert set(triggers.__all__) == {
        "BaseTrigger",
        "DagRunStateTrigger",
        "DateTimeTrigger",
        "EventType",
        "FileTrigger",
        "HttpPollTrigger",
        "TaskEndEvent",
        "TaskFailedEvent",
        "TaskSkippedEvent",
        "TaskStateTrigger",
        "TaskSuccessEvent",
        "TimeDeltaTrigger",
        "TriggerContext",
        "TriggerEvent",
    }
