"""Idle time triggers wait on a loop timer, not a task, and behave as if they had a task all along."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tocsin_client import AsyncClient, serde
from tocsin_client.triggerer._host import TriggerHost
from tocsin_client.triggers import DateTimeTrigger

from tests.triggerer.test_host import ListSink, workload

DT = "tocsin_client.triggers.DateTimeTrigger"
TD = "tocsin_client.triggers.TimeDeltaTrigger"


class CleansUp(DateTimeTrigger):
    """A time trigger with a cleanup of its own: it must keep its task (the cleanup runs on cancel)."""

    cleaned = 0

    async def cleanup(self) -> None:
        type(self).cleaned += 1


@pytest.fixture
async def host() -> AsyncIterator[tuple[TriggerHost, ListSink]]:
    client = AsyncClient("http://tocsin.test")
    sink = ListSink()
    yield TriggerHost(sink, lambda _id, token: client.with_token(token), allowed=("tocsin_client.*", "tests.*")), sink
    await client.aclose()


def due_in(seconds: float) -> dict[str, Any]:
    return {"moment": datetime.now(UTC) + timedelta(seconds=seconds)}


async def test__time_trigger_due_later__waits_on_a_timer_then_fires_once_at_its_moment(host: Any) -> None:
    runner, sink = host
    moment = datetime.now(UTC) + timedelta(seconds=1.5)
    runner.start(workload(1, DT, {"moment": moment}))
    assert (len(runner), runner.waiting_on_timers) == (1, 1)
    assert 1 in runner
    await sink.until(lambda: sink.done_ids, timeout_s=10)
    assert datetime.now(UTC) >= moment
    assert [event.trigger_id for event in sink.events] == [1]
    assert serde.deserialize(sink.events[0].payload) == moment
    assert (len(runner), runner.waiting_on_timers, runner.ended) == (0, 0, 1)


async def test__time_delta_trigger__waits_on_a_timer_too(host: Any) -> None:
    runner, _ = host
    runner.start(workload(2, TD, {"delta": timedelta(days=30)}))
    assert runner.waiting_on_timers == 1


async def test__cancelled_while_on_its_timer__never_fires_and_counts_as_ended(host: Any) -> None:
    runner, sink = host
    runner.start(workload(3, DT, due_in(1.2)))
    runner.cancel(3)
    assert (len(runner), runner.ended) == (0, 1)
    await asyncio.sleep(1.5)
    assert sink.events == []
    assert sink.done_ids == []


async def test__stop__cancels_the_timers_and_the_tasks(host: Any) -> None:
    runner, sink = host
    for trigger_id in range(10, 20):
        runner.start(workload(trigger_id, DT, due_in(3600)))
    runner.start(workload(20, "tests.triggerer.sample_triggers.Never", {}))
    await asyncio.sleep(0.05)
    await runner.stop(2.0)
    assert (len(runner), runner.ended) == (0, 11)
    assert sink.events == []


async def test__time_trigger_with_its_own_cleanup__keeps_its_task_and_its_cleanup_runs(host: Any) -> None:
    runner, _ = host
    runner.start(workload(4, f"{__name__}.CleansUp", due_in(3600)))
    assert (len(runner), runner.waiting_on_timers) == (1, 0)
    await asyncio.sleep(0.05)
    runner.cancel(4)
    await asyncio.sleep(0.05)
    assert CleansUp.cleaned == 1


async def test__time_trigger_due_soon__sleeps_in_its_task(host: Any) -> None:
    runner, sink = host
    runner.start(workload(5, DT, due_in(0.2)))
    assert runner.waiting_on_timers == 0
    await sink.until(lambda: sink.events, timeout_s=5)


async def test__time_trigger_that_cannot_be_built__still_fails_as_itself(host: Any) -> None:
    runner, sink = host
    runner.start(workload(6, DT, {"moment": datetime(2030, 1, 1)}))
    await sink.until(lambda: sink.failures, timeout_s=5)
    assert sink.failures[0].trigger_id == 6
    assert "timezone-aware" in sink.failures[0].error
    assert runner.waiting_on_timers == 0


def _start_burst(runner: Any, count: int = 10_000) -> int:
    """``count`` time triggers due at one instant, 4 s from now (starting 10,000 takes a while itself)."""
    moment = {"moment": datetime.now(UTC) + timedelta(seconds=4)}
    for trigger_id in range(count):
        runner.start(workload(trigger_id, DT, moment))
    return count


async def test__many_due_at_one_instant__fire_over_several_loop_turns_each_once(host: Any) -> None:
    """A burst of rung timers is fired in slices: the loop turns (and a frame of events leaves) between them."""
    runner, sink = host
    count = _start_burst(runner)
    assert runner.waiting_on_timers == count
    seen_between: list[int] = []

    async def watch_turns() -> None:
        while len(sink.done_ids) < count:
            if 0 < len(sink.events) < count:
                seen_between.append(len(sink.events))
            await asyncio.sleep(0)

    await asyncio.wait_for(watch_turns(), timeout=30)
    assert seen_between, "every event was emitted within one loop turn"
    assert sorted(event.trigger_id for event in sink.events) == list(range(count))
    assert len({event.event_id for event in sink.events}) == count
    assert sorted(sink.done_ids) == list(range(count))
    assert (len(runner), runner.waiting_on_timers, runner.ended) == (0, 0, count)


async def test__cancelled_after_its_timer_rang_but_before_it_fired__never_fires(host: Any) -> None:
    runner, sink = host
    count = _start_burst(runner)
    await sink.until(lambda: sink.events, timeout_s=10)
    fired_before = {event.trigger_id for event in sink.events}
    for trigger_id in range(count):
        runner.cancel(trigger_id)
    assert (len(runner), runner.ended) == (0, count)
    await asyncio.sleep(0.1)  # the firing task's next slice, if it were still going
    assert {event.trigger_id for event in sink.events} == fired_before
    assert len(fired_before) < count  # some were cancelled while due, not yet fired
    assert sorted(sink.done_ids) == sorted(fired_before)


class FailsOnceFinished(ListSink):
    """A sink whose ``finished`` raises for one trigger (a bug anywhere below the host)."""

    def __init__(self, failing: int) -> None:
        super().__init__()
        self.failing = failing

    def finished(self, trigger_id: int) -> None:
        super().finished(trigger_id)
        if trigger_id == self.failing:
            raise RuntimeError("the sink broke")


async def test__an_error_firing_one_of_a_burst__the_rest_still_fire() -> None:
    client = AsyncClient("http://tocsin.test")
    sink = FailsOnceFinished(failing=3)
    host = TriggerHost(sink, lambda _id, token: client.with_token(token))
    try:
        count = _start_burst(host, 50)
        await sink.until(lambda: len(sink.done_ids) == count, timeout_s=15)
        assert sorted(event.trigger_id for event in sink.events) == list(range(count))
        assert (len(host), host.firing) == (0, False)
    finally:
        await client.aclose()


async def test__stopping_during_a_burst__nothing_fires_after_stop_began(host: Any) -> None:
    runner, sink = host
    count = _start_burst(runner)
    await sink.until(lambda: sink.events, timeout_s=10)  # the burst is under way
    await runner.stop(timeout_s=5)
    fired = len(sink.events)
    assert (len(runner), runner.firing, runner.ended) == (0, False, count)
    await asyncio.sleep(0.1)  # a slice or a timer that would still go
    assert len(sink.events) == fired < count
