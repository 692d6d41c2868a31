"""The outbox: fired events and failures wait here until the server has them.

Items go out at once, ``concurrency`` at a time. The answer decides what happens next:

- 2xx: delivered.
- transient (connection error, timeout, 429, 5xx): kept, retried after a jittered backoff; nothing else stops.
- 409: the trigger belongs to another job now; ``on_conflict`` cancels it here, the item is dropped.
- 413 or 422 on an event: the payload can never be stored, so the trigger is reported failed instead (poison
  input ends, it never loops).
- any other 4xx: logged at ERROR with the problem body, counted, dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from tocsin_client._client import AsyncClient
from tocsin_client.errors import (
    APIError,
    ConflictError,
    PayloadTooLargeError,
    TocsinError,
    ValidationError,
)
from tocsin_client.generated.models import TriggerEventBody, TriggerFailureBody
from tocsin_client.triggerer._backoff import backoff_delay
from tocsin_client.triggerer._frames import EventOut, FailureOut
from tocsin_client.triggerer._stats import Stats

__all__ = ["Outbox"]

_log = logging.getLogger("tocsin.triggerer")
_EVENT_TYPE_ON_WIRE: Final = "event_type" in TriggerEventBody.__struct_fields__


@dataclass(slots=True)
class _Item:
    trigger_id: int
    event: EventOut | None = None
    failure: FailureOut | None = None
    attempts: int = 0


def _event_body(event: EventOut) -> TriggerEventBody:
    fields: dict[str, Any] = {"event_id": event.event_id, "payload": event.payload}
    if _EVENT_TYPE_ON_WIRE:
        fields["event_type"] = event.event_type
    return TriggerEventBody(**fields)


class Outbox:
    """Delivers events and failures; see the module docstring for the rules.

    Args:
        client: The job's client.
        stats: Counters to update.
        on_conflict: Called with a trigger id whose event or failure got 409.
        concurrency: Items in flight at once.
        retry_base_s: First retry delay.
        retry_max_s: Longest retry delay.
    """

    def __init__(
        self,
        client: AsyncClient,
        stats: Stats,
        on_conflict: Callable[[int], None],
        *,
        concurrency: int = 32,
        retry_base_s: float = 0.25,
        retry_max_s: float = 5.0,
    ) -> None:
        self._client = client
        self._stats = stats
        self._on_conflict = on_conflict
        self._concurrency = concurrency
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._ready: deque[_Item] = deque()
        self._waiting = 0  # items sleeping before a retry
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers: list[asyncio.Task[None]] = []
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self._warned_terminal = False

    # -- filling ---------------------------------------------------------------------------------------------------

    def put_event(self, event: EventOut) -> None:
        """Queue a fired event."""
        if event.event_type != "resume" and not _EVENT_TYPE_ON_WIRE and not self._warned_terminal:
            self._warned_terminal = True
            _log.warning(
                "API version %s carries no event type: terminal events (%s) are sent as plain resumes",
                self._client.api_version,
                event.event_type,
            )
        self._push(_Item(event.trigger_id, event=event))

    def put_failure(self, failure: FailureOut) -> None:
        """Queue a trigger failure."""
        self._push(_Item(failure.trigger_id, failure=failure))

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

    def start(self) -> None:
        """Start the delivery workers."""
        self._workers = [asyncio.create_task(self._work(), name=f"tocsin-outbox-{n}") for n in range(self._concurrency)]

    async def close(self) -> None:
        """Stop delivering; whatever is left is dropped (and logged)."""
        for handle in self._retry_handles:
            handle.cancel()
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
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

    async def _work(self) -> None:
        while True:
            while not self._ready:
                self._wake.clear()
                await self._wake.wait()
            item = self._ready.popleft()
            self._in_flight += 1
            try:
                await self._deliver(item)
            finally:
                self._in_flight -= 1
                self._check_idle()

    def _check_idle(self) -> None:
        if not self._ready and not self._in_flight and not self._waiting:
            self._idle.set()

    async def _deliver(self, item: _Item) -> None:
        operation = "submitTriggerEvent" if item.event is not None else "submitTriggerFailure"
        try:
            await self._send(item)
        except ConflictError as exc:
            self._stats.conflicts += 1
            _log.warning("trigger %s belongs to another job now (%s); cancelling it here", item.trigger_id, exc)
            self._on_conflict(item.trigger_id)
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
            self._stats.events_sent += 1
            self._stats.record_latency(time.time() - item.event.fired_at)
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
