"""The outbox's bulk path: few requests in flight at once, the events fired meanwhile filling the next one."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

from tocsin_client import AsyncClient
from tocsin_client.generated.models import TriggerEventItemResult, TriggerEventsBody, TriggerEventsResult
from tocsin_client.triggerer._frames import EventOut, FailureOut
from tocsin_client.triggerer._outbox import BULK_IN_FLIGHT, BULK_MAX, Outbox
from tocsin_client.triggerer._stats import Stats


class SlowServer:
    """Answers every bulk event 200 after ``delay_s``; counts the requests in flight at once."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0
        self.batches: list[list[str]] = []
        self.failures: list[int] = []
        self.answered: list[str] = []  # bulk answers and failures received, in order

    async def submit_trigger_events(self, body: TriggerEventsBody) -> TriggerEventsResult:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        self.batches.append([event.event_id for event in body.events])
        self.answered.append(f"batch of {len(body.events)}")
        results = [
            TriggerEventItemResult(
                trigger_id=event.trigger_id,
                event_id=event.event_id,
                status=200,
                duplicate=False,
                task_instances_resumed=1,
                problem=None,
            )
            for event in body.events
        ]
        return TriggerEventsResult(results=results, applied=len(results), failed=0)

    async def submit_trigger_failure(self, trigger_id: int, _body: Any) -> None:
        self.failures.append(trigger_id)
        self.answered.append("failure")


def event(trigger_id: int) -> EventOut:
    return EventOut(trigger_id, uuid.uuid4().hex, "fired", None, time.time())


@contextlib.asynccontextmanager
async def delivering(outbox: Outbox) -> AsyncIterator[Outbox]:
    """The outbox with its ``concurrency`` delivery loops running (the default 32, as the supervisor runs them)."""
    workers = [asyncio.create_task(outbox.work()) for _ in range(outbox.concurrency)]
    try:
        yield outbox
    finally:
        for worker in workers:
            worker.cancel()


async def test__a_burst__goes_out_in_full_batches_with_few_requests_in_flight() -> None:
    server = SlowServer(delay_s=0.02)
    stats = Stats()
    async with delivering(Outbox(cast("AsyncClient", server), stats, lambda _id, _old: None)) as outbox:
        outbox.put_event(event(0))  # the first event leaves alone, at once
        await asyncio.sleep(0.005)
        for trigger_id in range(1, 10_000):  # the rest fire while it is in flight
            outbox.put_event(event(trigger_id))
        outbox.put_failure(FailureOut(10_000, "boom", []))
        assert await outbox.drain(30)
    sizes = [len(batch) for batch in server.batches]
    assert server.most_in_flight <= BULK_IN_FLIGHT
    assert sizes[0] == 1
    assert max(sizes) == BULK_MAX
    assert len(sizes) <= 1 + 10_000 // BULK_MAX + BULK_IN_FLIGHT  # full batches, not 30 small ones
    delivered = [event_id for batch in server.batches for event_id in batch]
    assert len(delivered) == len(set(delivered)) == 10_000
    assert stats.events_sent == 10_000
    assert server.failures == [10_000]


async def test__a_failure_at_the_head_goes_at_once__not_after_a_bulk_slot_frees() -> None:
    """Both bulk requests are out and the loops wait for a slot; once the events ahead of a failure are taken, the
    failure goes alone at once, not when the second bulk request ends."""
    server = SlowServer(delay_s=0.6)
    async with delivering(Outbox(cast("AsyncClient", server), Stats(), lambda _id, _old: None)) as outbox:
        for trigger_id in range(BULK_MAX):  # the first bulk request: answered at 0.6 s
            outbox.put_event(event(trigger_id))
        await asyncio.sleep(0.3)
        for trigger_id in range(BULK_MAX, 2 * BULK_MAX + 500):  # the second (answered at 0.9 s), 500 left waiting
            outbox.put_event(event(trigger_id))
        outbox.put_failure(FailureOut(99_999, "boom", []))
        assert await outbox.drain(30)
    # At 0.6 s the first slot frees: its loop takes the 500, and the failure is at the head: it goes then.
    assert server.answered[:3] == [f"batch of {BULK_MAX}", "failure", f"batch of {BULK_MAX}"], server.answered
