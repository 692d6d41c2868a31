"""The outbox: fired events and failures wait here until the server has them.

Items go out at once, ``concurrency`` requests at a time; the events that are ready go together
(``submitTriggerEvents``), up to ``BULK_MAX`` per request and ``BULK_IN_FLIGHT`` such requests at a time (the
events fired meanwhile fill the next one), and each item's own status is judged as if it had been sent alone.
Failures, and events the server refused as part of a bulk request, go alone. The answer decides what happens
next:

- 2xx: delivered.
- transient (connection error, timeout, 429, 5xx): kept, retried after a jittered backoff; nothing else stops.
- 409: the trigger is not this job's (now); ``on_conflict`` cancels it here, the item is dropped.
- 413 or 422 on an event: the payload can never be stored, so the trigger is reported failed instead (poison
  input ends, it never loops).
- any other 4xx: logged at ERROR with the problem body, counted, dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog

from tocsin_client._client import AsyncClient
from tocsin_client.errors import (
    APIError,
    ConflictError,
    PayloadTooLargeError,
    TocsinError,
    ValidationError,
)
from tocsin_client.generated.models import (
    Problem,
    TriggerEventBody,
    TriggerEventItem,
    TriggerEventsBody,
    TriggerFailureBody,
)
from tocsin_client.triggerer._backoff import backoff_delay
from tocsin_client.triggerer._frames import EventOut, FailureOut
from tocsin_client.triggerer._stats import Stats

if TYPE_CHECKING:
    from tocsin_client._tracing import TriggererTracing

__all__ = ["Outbox"]

_log = logging.getLogger("tocsin.triggerer")
BULK_MAX: Final = 1000
BULK_IN_FLIGHT: Final = 2
_POISON: Final = frozenset({413, 422})


@dataclass(slots=True)
class _Item:
    trigger_id: int
    event: EventOut | None = None
    failure: FailureOut | None = None
    lease: int = 0  # the outbox's lease when queued
    attempts: int = 0
    single: bool = False  # a bulk request refused as a whole: send this one alone
    fire: Any = None  # the trace context of the event's fire, when tracing is on


def _event_fields(event: EventOut) -> dict[str, Any]:
    fields: dict[str, Any] = {"event_id": event.event_id, "payload": event.payload, "event_type": event.event_type}
    if event.xcoms:  # one path: the server stores them with the state change, atomically
        fields["xcoms"] = event.xcoms
    return fields


def _event_body(event: EventOut) -> TriggerEventBody:
    return TriggerEventBody(**_event_fields(event))


class Outbox:
    """Delivers events and failures; see the module docstring for the rules.

    Args:
        client: The job's client.
        stats: Counters to update.
        on_conflict: Called with a trigger id whose event or failure got 409, and whether it was queued under an
            earlier lease (``lease``, which the supervisor counts up each time it registers a new job).
        concurrency: Items in flight at once.
        bulk_in_flight: Bulk requests in flight at once (the events ready meanwhile go in the next one).
        retry_base_s: First retry delay.
        retry_max_s: Longest retry delay.
        tracing: The triggerer's tracing when ``TOCSIN_OTEL`` is on: each event's delivery joins its fire's trace.
    """

    def __init__(
        self,
        client: AsyncClient,
        stats: Stats,
        on_conflict: Callable[[int, bool], None],
        *,
        concurrency: int = 32,
        bulk_in_flight: int = BULK_IN_FLIGHT,
        retry_base_s: float = 0.25,
        retry_max_s: float = 5.0,
        tracing: TriggererTracing | None = None,
    ) -> None:
        self._client = client
        self._tracing = tracing
        self._stats = stats
        self._on_conflict = on_conflict
        self.lease = 0
        self._concurrency = concurrency
        self._bulk_limit = bulk_in_flight
        self._bulk_sending = 0
        # Set when a bulk request takes its events or ends: loops parked because every bulk slot was taken look
        # at the head again (it may be a failure now, which goes alone at once, not after a slot frees).
        self._bulk_turn = asyncio.Event()
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._ready: deque[_Item] = deque()
        self._waiting = 0  # items sleeping before a retry
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry_handles: set[asyncio.TimerHandle] = set()

    # -- filling ---------------------------------------------------------------------------------------------------

    def put_event(self, event: EventOut) -> None:
        """Queue a fired event."""
        fire = self._tracing.fired(event) if self._tracing is not None else None
        self._push(_Item(event.trigger_id, event=event, lease=self.lease, fire=fire))

    def put_failure(self, failure: FailureOut) -> None:
        """Queue a trigger failure."""
        self._push(_Item(failure.trigger_id, failure=failure, lease=self.lease))

    def _push(self, item: _Item) -> None:
        self._ready.append(item)
        self._idle.clear()
        self._wake.set()

    @property
    def depth(self) -> dict[str, int]:
        """Queued items by kind (ready, in flight and waiting to retry)."""
        return {"ready": len(self._ready), "in_flight": self._in_flight, "retrying": self._waiting}

    def __len__(self) -> int:
        return len(self._ready) + self._in_flight + self._waiting

    # -- running ---------------------------------------------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """How many ``work`` loops should run (items in flight at once)."""
        return self._concurrency

    async def close(self) -> None:
        """Stop retrying, after the ``work`` loops were stopped; whatever is left is dropped (and logged)."""
        for handle in self._retry_handles:
            handle.cancel()
        if left := len(self._ready) + self._waiting:
            _log.warning("%d events or failures were not delivered; their triggers will run again elsewhere", left)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything queued is delivered (or dropped by rule); False when time ran out."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def work(self) -> None:
        """One delivery loop, until cancelled (the supervisor runs ``concurrency`` of them as its duties)."""
        while True:
            while not self._ready:
                self._wake.clear()
                await self._wake.wait()
            head = self._ready[0]
            if head.event is None or head.single:
                item = self._ready.popleft()
                await self._send_items([item], self._deliver(item))
                continue
            # At most ``bulk_in_flight`` bulk requests at once: while they are applied the next batch fills up
            # (a burst of 10,000 as 30 small requests all at once took the one server process 2-3x longer).
            if self._bulk_sending >= self._bulk_limit:
                self._bulk_turn.clear()
                await self._bulk_turn.wait()
                continue
            items: list[_Item] = []
            while self._ready and len(items) < BULK_MAX:
                head = self._ready[0]
                if head.event is None or head.single:
                    break
                items.append(self._ready.popleft())
            self._bulk_sending += 1
            self._bulk_turn.set()
            try:
                await self._send_items(items, self._deliver_bulk(items))
            finally:
                self._bulk_sending -= 1
                self._bulk_turn.set()

    async def _send_items(self, items: list[_Item], delivery: Coroutine[Any, Any, None]) -> None:
        """Await ``delivery`` of ``items``, counted in flight and traced as their fires' delivery."""
        self._in_flight += len(items)
        traced = self._tracing.delivering([item.fire for item in items]) if self._tracing else nullcontext()
        try:
            with traced:
                await delivery
        finally:
            self._in_flight -= len(items)
            self._check_idle()

    async def _deliver_bulk(self, items: list[_Item]) -> None:
        body = TriggerEventsBody(
            events=[
                TriggerEventItem(trigger_id=item.trigger_id, **_event_fields(item.event))
                for item in items
                if item.event
            ]
        )
        try:
            answer = await self._client.submit_trigger_events(body)
        except TocsinError as exc:
            self._stats.api_error("submitTriggerEvents")
            for item in items:
                if exc.transient:
                    self._retry(item, exc)
                else:  # refused as a whole (e.g. too large together): each goes alone and is judged alone
                    item.single = True
                    self._push(item)
            return
        if len(answer.results) != len(items):
            _log.error(
                "the bulk answer has %d results for %d events; resending them alone", len(answer.results), len(items)
            )
            for item in items:
                item.single = True
                self._push(item)
            return
        for item, result in zip(items, answer.results, strict=True):
            self._judge(item, result.status, result.problem)

    def _judge(self, item: _Item, status: int, problem: Problem | None) -> None:
        """One item of a bulk answer, by the rules of a single submission."""
        if status == 200:  # nothing to log: binding the trigger's id for 10,000 delivered events cost ~50 ms
            assert item.event is not None
            self._stats.event_sent(item.event.fired_at)
            return
        with structlog.contextvars.bound_contextvars(trigger_id=item.trigger_id):
            self._judge_one(item, status, problem)

    def _judge_one(self, item: _Item, status: int, problem: Problem | None) -> None:
        assert item.event is not None
        detail = "" if problem is None else str(problem.detail or problem.title)  # UNSET is falsy
        if status == 409:
            self._stats.conflicts += 1
            _log.warning("trigger %s belongs to another job now (%s); cancelling it here", item.trigger_id, detail)
            self._on_conflict(item.trigger_id, item.lease != self.lease)
        elif status == 429 or status >= 500:
            self._retry(item, TocsinError(f"{status} {detail}"))
        elif status in _POISON:
            self._stats.delivery_rejected += 1
            _log.error(
                "trigger %s: the server refused its event for good (%s %s); reporting it failed",
                item.trigger_id,
                status,
                detail,
            )
            self.put_failure(
                FailureOut(item.trigger_id, f"the event could not be stored: {status} {detail}"[:10_000], [])
            )
        else:
            self._stats.delivery_rejected += 1
            body = msgspec.to_builtins(problem) if problem is not None else None
            _log.error("trigger %s: its event was refused: %s; problem: %s", item.trigger_id, status, body)

    def _check_idle(self) -> None:
        if not self._ready and not self._in_flight and not self._waiting:
            self._idle.set()

    async def _deliver(self, item: _Item) -> None:
        with structlog.contextvars.bound_contextvars(trigger_id=item.trigger_id):
            await self._deliver_one(item)

    async def _deliver_one(self, item: _Item) -> None:
        operation = "submitTriggerEvent" if item.event is not None else "submitTriggerFailure"
        try:
            await self._send(item)
        except ConflictError as exc:
            self._stats.conflicts += 1
            _log.warning("trigger %s belongs to another job now (%s); cancelling it here", item.trigger_id, exc)
            self._on_conflict(item.trigger_id, item.lease != self.lease)
        except TocsinError as exc:
            self._stats.api_error(operation)
            if exc.transient:
                self._retry(item, exc)
            elif item.event is not None and isinstance(exc, PayloadTooLargeError | ValidationError):
                self._poison(item, exc)
            else:
                self._reject(item, operation, exc)

    async def _send(self, item: _Item) -> None:
        if item.event is not None:
            await self._client.submit_trigger_event(item.trigger_id, _event_body(item.event))
            self._stats.event_sent(item.event.fired_at)
        elif item.failure is not None:
            body = TriggerFailureBody(
                error=item.failure.error or "unknown error", traceback=item.failure.traceback or msgspec.UNSET
            )
            await self._client.submit_trigger_failure(item.trigger_id, body)
            self._stats.failures_sent += 1

    def _retry(self, item: _Item, exc: TocsinError) -> None:
        item.attempts += 1
        self._stats.delivery_retries += 1
        delay = backoff_delay(item.attempts, base_s=self._retry_base_s, max_s=self._retry_max_s)
        if item.attempts == 1 or item.attempts % 10 == 0:
            _log.warning(
                "trigger %s: delivery failed (%s); retry %d in %.2f s", item.trigger_id, exc, item.attempts, delay
            )
        self._waiting += 1
        handle: asyncio.TimerHandle | None = None

        def requeue() -> None:
            self._waiting -= 1
            if handle is not None:
                self._retry_handles.discard(handle)
            self._push(item)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._retry_handles.add(handle)

    def _poison(self, item: _Item, exc: APIError) -> None:
        self._stats.delivery_rejected += 1
        _log.error(
            "trigger %s: the server refused its event for good (%s); reporting the trigger failed instead",
            item.trigger_id,
            exc,
            extra={"problem": msgspec.to_builtins(exc.problem)},
        )
        self.put_failure(FailureOut(item.trigger_id, f"the event could not be stored: {exc}"[:10_000], []))

    def _reject(self, item: _Item, operation: str, exc: TocsinError) -> None:
        self._stats.delivery_rejected += 1
        problem = msgspec.to_builtins(exc.problem) if isinstance(exc, APIError) else None
        _log.error("trigger %s: %s was refused: %s; problem: %s", item.trigger_id, operation, exc, problem)
