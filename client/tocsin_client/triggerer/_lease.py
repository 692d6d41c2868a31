"""``Lease``: the job's registration, its heartbeats and its completion.

Registration uses the triggerer-scoped token and is retried while the server is unreachable; every later call
uses the job's own token. Heartbeats go out on the interval the server gave at registration, but only while every
runner loop shows progress: a stalled loop must let the lease lapse so the server hands its triggers to others.
409 on a heartbeat raises ``LostLeaseError`` (the supervisor registers a new job, or exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

from tocsin_wire.logs import bind_process

from tocsin_client.errors import ConflictError, TocsinError
from tocsin_client.generated.models import JobRegistration, JobRegistrationBody
from tocsin_client.triggerer._backoff import backoff_delay
from tocsin_client.triggerer._duties import LostLeaseError

if TYPE_CHECKING:
    from tocsin_client._client import AsyncClient
    from tocsin_client.triggerer._pool import RunnerPool
    from tocsin_client.triggerer._stats import Stats
    from tocsin_client.triggerer.config import TriggererConfig

__all__ = ["Lease"]

_log = logging.getLogger("tocsin.triggerer")


class Lease:
    """One job at a time: ``register``, ``adopt``, ``heartbeats`` until the lease ends, ``complete``.

    Args:
        client: The job's client (its token becomes the job's on ``adopt``).
        config: The triggerer's settings.
        stats: Counters to update.
        pool: The runners, asked whether every loop makes progress before each heartbeat.
        stop: Set when the triggerer stops (registration stops retrying).
    """

    def __init__(
        self,
        client: AsyncClient,
        config: TriggererConfig,
        stats: Stats,
        pool: RunnerPool,
        stop: asyncio.Event,
    ) -> None:
        self._client = client
        self._registrar = client.with_token(config.token)
        self._config = config
        self._stats = stats
        self._pool = pool
        self._stop = stop
        self.job: JobRegistration | None = None

    async def register(self) -> JobRegistration | None:
        """A new job; None when stopped while the server was unreachable. Raises ``TocsinError`` on a refusal."""
        body = JobRegistrationBody(hostname=self._config.hostname, pid=os.getpid(), capacity=self._config.capacity)
        attempt = 0
        while not self._stop.is_set():
            try:
                return await self._registrar.register_job(body)
            except TocsinError as exc:
                if not exc.transient:
                    raise
                attempt += 1
                delay = backoff_delay(attempt, base_s=0.5, max_s=10.0)
                _log.warning("cannot register yet (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
        return None

    def adopt(self, job: JobRegistration) -> None:
        """Make ``job`` the one every later call speaks for."""
        self.job = job
        self._client.token = job.token
        bind_process(job_id=job.job_id)  # every line from here on, in every task, names the current job
        self._pool.tell_job(job.job_id)  # and in every runner
        _log.info(
            "registered job %s (capacity %s, heartbeat every %.1f s)",
            job.job_id,
            job.capacity,
            job.heartbeat_interval_s,
        )

    async def heartbeats(self) -> None:
        """The heartbeat duty: beat on the job's interval until the lease ends (``LostLeaseError``)."""
        assert self.job is not None
        interval = self.job.heartbeat_interval_s
        while True:
            await self.beat()
            await asyncio.sleep(interval)

    async def beat(self) -> None:
        """One heartbeat, unless a runner loop stalled; API errors other than 409 are logged and counted."""
        assert self.job is not None
        threshold = self._config.runner_health_threshold_s
        if stalled := self._pool.stalled(threshold):
            if self._stats.healthy:
                _log.critical(
                    "runner loop(s) %s made no progress for %.0f s: not heartbeating until they do", stalled, threshold
                )
            self._stats.healthy = False
            return
        if not self._stats.healthy:
            _log.warning("every runner loop makes progress again: heartbeating")
        self._stats.healthy = True
        try:
            await self._client.heartbeat_job(self.job.job_id)
        except ConflictError as exc:
            _log.critical("heartbeat refused: %s; stopping every trigger", exc)
            raise LostLeaseError from exc
        except TocsinError as exc:
            self._stats.api_error("heartbeatJob")
            level = logging.WARNING if exc.transient else logging.ERROR
            _log.log(level, "heartbeat failed: %s", exc)
        else:
            self._stats.last_heartbeat = time.monotonic()

    async def complete(self) -> None:
        """Tell the server the job is done, so its triggers go to other triggerers now (errors are logged)."""
        assert self.job is not None
        try:
            await self._client.complete_job(self.job.job_id)
            _log.info("job %s completed; its triggers go to other triggerers now", self.job.job_id)
        except TocsinError as exc:
            _log.error("could not complete job %s: %s", self.job.job_id, exc)
