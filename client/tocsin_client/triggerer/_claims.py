"""``Claims``: the claim cycle, which keeps what runs here equal to what the server says this job holds.

Each cycle loads the job's triggers (the delta form after the first answer: it costs work in proportion to the
change, not to the 100,000 triggers held), diffs that against the ``Registry``, fetches the workloads of the new
ids and dispatches them, cancels the removed ones, and calls ``cleanup`` now and then. A cycle that brought new
triggers runs again at once (the server may hold more to give); one that failed backs off. A runner that died
or a stale 409 wakes the cycle early (``runner_lost``, ``conflict``). 409 on a load raises ``LostLeaseError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Final

from tocsin_client.errors import ConflictError, TocsinError
from tocsin_client.generated.models import TriggerLoadBody, WorkloadsBody
from tocsin_client.triggerer._backoff import backoff_delay
from tocsin_client.triggerer._duties import LostLeaseError

if TYPE_CHECKING:
    from tocsin_client._client import AsyncClient
    from tocsin_client.triggerer._pool import RunnerPool
    from tocsin_client.triggerer._registry import Registry
    from tocsin_client.triggerer._stats import Stats
    from tocsin_client.triggerer.config import TriggererConfig

__all__ = ["WORKLOAD_CHUNK", "Claims"]

_log = logging.getLogger("tocsin.triggerer")
WORKLOAD_CHUNK: Final = 10_000  # WorkloadsBody.trigger_ids maxItems


class Claims:
    """The claim-cycle duty and the events that change what it must start.

    Args:
        client: The job's client.
        config: The triggerer's settings.
        stats: Counters to update.
        registry: The books of held and running triggers.
        pool: The runners the triggers start and stop on.
        stop: Set when the triggerer stops (no new cycle, no new start).
    """

    def __init__(
        self,
        client: AsyncClient,
        config: TriggererConfig,
        stats: Stats,
        registry: Registry,
        pool: RunnerPool,
        stop: asyncio.Event,
    ) -> None:
        self._client = client
        self._config = config
        self._stats = stats
        self._registry = registry
        self._pool = pool
        self._stop = stop
        self._version: str | None = None
        self._last_cleanup = 0.0
        self._wake = asyncio.Event()
        self._starting: asyncio.Task[int] | None = None

    async def cycles(self) -> None:
        """The claim-cycle duty: cycle until the triggerer stops (or the lease ends: ``LostLeaseError``)."""
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    grew = await self.cycle()
                    if not grew:
                        await self._finish_start()  # its failure counts before the pause, as a cycle's own
                except LostLeaseError:
                    raise
                except TocsinError as exc:
                    failures += 1
                    level = logging.WARNING if exc.transient else logging.ERROR
                    _log.log(level, "claim cycle failed: %s", exc)
                    await self._pause(backoff_delay(failures, base_s=self._config.cycle_interval_s, max_s=30.0))
                    continue
                failures = 0
                if not grew:
                    await self._pause(self._config.cycle_interval_s)
        finally:
            await self._abandon_start()

    async def cycle(self) -> bool:
        """One claim cycle; True when new triggers arrived (the server may hold more to give right away).

        The workloads of what arrived are fetched and dispatched by a task that runs while the next cycle's load
        is on its way (a triggerer ramping to a million triggers would otherwise wait for each in turn). That
        load's answer is applied only after the task is done, so the books change in the same order as one cycle
        after the other: what a fetch started and the next load says is gone is cancelled, never left running.
        """
        try:
            answer = await self._client.load_triggers(TriggerLoadBody(known_version=self._version))
        except ConflictError as exc:
            await self._settle_start()
            _log.critical("load refused: %s; stopping every trigger", exc)
            raise LostLeaseError from exc
        except TocsinError:
            await self._settle_start()
            self._stats.api_error("loadTriggers")
            raise
        # Unapplied if the fetch failed: the next load (same known version) answers these changes again.
        started = await self._finish_start()
        if answer.full:
            removed = self._registry.load_full(answer.trigger_ids)
        else:
            removed = self._registry.load_delta(answer.added, answer.removed)
        self._version = answer.version
        self._stats.held = self._registry.held_count
        if removed:
            _log.info("cancelling %d triggers this job no longer holds", len(removed))
            self._pool.cancel(removed)
        pending = self._registry.has_pending
        if pending and not self._stop.is_set():
            self._starting = asyncio.create_task(self._start())
        await self._maybe_cleanup()
        return bool(answer.added) or (answer.full and (pending or started > 0))

    def lease_ended(self) -> None:
        """Forget the old job's claims: the next load (the new job's first) is a full one."""
        self._version = None
        self._stats.held = 0
        # Triggers this lease stopped on a 409 may belong to the new job: they start again if it holds them.
        self._pool.cancel(self._registry.lease_ended())

    def runner_lost(self, trigger_ids: set[int]) -> None:
        """A runner died holding these: start the held ones again on the next cycle, which starts now."""
        self._registry.start_again(trigger_ids)
        self._wake.set()

    def conflict(self, trigger_id: int, stale: bool) -> None:
        """An event or failure got 409: the trigger is not this job's.

        Of this lease: cancel it, but keep it as handled so it is not started again while a load lists it. Of a
        lease that ended (queued before a new job registered): forget it, so that if the new job holds it, it
        starts again and fires again; its workload comes back only if the job really holds it.
        """
        if not stale:
            self._pool.stop_trigger(trigger_id)
            return
        self._pool.cancel([trigger_id])
        if self._registry.start_again([trigger_id]):
            self._wake.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _finish_start(self) -> int:
        """Wait for the fetch-and-dispatch task of the last cycle, if any; how many it started (its error raises)."""
        starting, self._starting = self._starting, None
        return 0 if starting is None else await starting

    async def _settle_start(self) -> None:
        """Let the last cycle's task finish when this cycle failed anyway: a failed fetch leaves its ids pending."""
        with contextlib.suppress(TocsinError):
            await self._finish_start()

    async def _abandon_start(self) -> None:
        """The duty ends (stopped, cancelled, or the lease ended): the task must not dispatch after it."""
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
        if starting is not None:
            with contextlib.suppress(asyncio.CancelledError, TocsinError):
                await starting

    async def _start(self) -> int:
        """Fetch the workloads of the held triggers not running yet and dispatch them; how many started."""
        pending = self._registry.pending()
        started = 0
        for offset in range(0, len(pending), WORKLOAD_CHUNK):
            chunk = pending[offset : offset + WORKLOAD_CHUNK]
            try:
                answer = await self._client.get_trigger_workloads(WorkloadsBody(trigger_ids=chunk))
            except TocsinError:
                self._stats.api_error("getTriggerWorkloads")
                raise
            if self._stop.is_set():
                break
            # Ids left out of the answer are no longer this job's; the next load says so.
            self._registry.fetched(chunk)
            started += self._pool.assign(answer.workloads)
        if started:
            _log.info("started %d triggers", started)
        return started

    async def _maybe_cleanup(self) -> None:
        now = time.monotonic()
        if now - self._last_cleanup < self._config.cleanup_interval_s:
            return
        self._last_cleanup = now
        try:
            await self._client.cleanup_triggers()
        except TocsinError as exc:
            self._stats.api_error("cleanupTriggers")
            _log.warning("cleanup failed: %s", exc)
