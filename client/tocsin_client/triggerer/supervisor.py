"""``Triggerer``: the supervisor. It owns every API call of the job and keeps them apart from the trigger loops.

It wires the parts and runs their duties; each part does one thing:

- ``_lease``: registration, heartbeats (only while every runner loop shows progress), completion;
- ``_claims``: the claim cycle (load, diff, fetch workloads, dispatch, cancel, cleanup);
- ``_registry``: the one place that knows which triggers are held, pending, running, parked or quarantined;
- ``_pool``: the runner processes; ``_grants``: fresh task-instance tokens for the triggers in them;
- ``_outbox``: delivery of events and failures; ``_logship`` and ``_logwire``: log lines to the server;
- ``_duties``: the named side tasks, watched together; ``_shutdown``: the order in which everything stops.

A first SIGTERM/SIGINT stops claiming, cancels the triggers, delivers what is queued within the grace period and
completes the job; a second one exits at once.

409 on a heartbeat or a load means the lease ended: the server no longer counts this job as running (an outage
longer than the liveness threshold, a laptop that slept) and has released its triggers. The triggerer registers
a new job and carries on: the first load of the new job is a full one, and whatever runs here that the new job
does not hold is cancelled. With ``exit_on_lost_lease`` it exits with ``EXIT_FENCED`` instead, for process
managers that prefer to restart it.

A duty that crashes (a bug, not an API error: those are retried) stops the triggerer gracefully and makes it exit
with ``EXIT_CRASHED``, naming the duty, so a process manager's restart-on-failure restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tocsin_client._client import AsyncClient
from tocsin_client.errors import TocsinError
from tocsin_client.triggerer._claims import Claims
from tocsin_client.triggerer._duties import Duties, DutyCrashedError, LostLeaseError
from tocsin_client.triggerer._frames import FailureOut, Report
from tocsin_client.triggerer._grants import TokenGrants
from tocsin_client.triggerer._lease import Lease
from tocsin_client.triggerer._logship import LogShipper
from tocsin_client.triggerer._logwire import log_sender
from tocsin_client.triggerer._outbox import Outbox
from tocsin_client.triggerer._pool import RunnerPool
from tocsin_client.triggerer._registry import Registry
from tocsin_client.triggerer._shutdown import (
    CLAIM_CYCLE,
    DELIVERY,
    EXIT_CRASHED,
    EXIT_FENCED,
    EXIT_OK,
    EXIT_REFUSED,
    HEARTBEAT,
    LOG_SHIPPING,
    Shutdown,
    Signals,
)
from tocsin_client.triggerer._stats import Stats

if TYPE_CHECKING:
    from tocsin_client._http import httpx
    from tocsin_client._tracing import TriggererTracing
    from tocsin_client.generated.models import JobRegistration
    from tocsin_client.triggerer.config import TriggererConfig

__all__ = ["EXIT_CRASHED", "EXIT_FENCED", "EXIT_OK", "EXIT_REFUSED", "Triggerer"]

_log = logging.getLogger("tocsin.triggerer")


def _tracing(client: AsyncClient) -> TriggererTracing:
    """Spans for the job's calls and its triggers' fires (``TOCSIN_OTEL``); OpenTelemetry is loaded only here."""
    from tocsin_client._tracing import TriggererTracing  # noqa: PLC0415

    tracing = TriggererTracing()
    tracing.instrument(client)
    return tracing


class Triggerer:
    """One triggerer job: ``await Triggerer(config).run()`` returns the process exit code.

    Args:
        config: Validated settings.
        transport: An httpx transport for the job's API calls instead of the network (tests).
    """

    def __init__(self, config: TriggererConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.stats = Stats()
        # The API version is the one the client was generated for: the triggerer speaks exactly that one.
        self._client = AsyncClient(config.api_url, token=config.token, transport=transport)
        tracing = _tracing(self._client) if config.otel else None
        self._stop = asyncio.Event()
        self._registry = Registry(config.runners)
        self._pool = RunnerPool(
            config, self._registry, self._on_report, self._on_lost, self._on_token_request, self._on_quarantine
        )
        self._grants = TokenGrants(self._client, self.stats, self._pool.grant)
        self._lease = Lease(self._client, config, self.stats, self._pool, self._stop)
        self._claims = Claims(self._client, config, self.stats, self._registry, self._pool, self._stop)
        self._outbox = Outbox(
            self._client,
            self.stats,
            self._claims.conflict,
            concurrency=config.delivery_concurrency,
            retry_base_s=config.retry_base_s,
            retry_max_s=config.retry_max_s,
            tracing=tracing,
        )
        self._logs = LogShipper(log_sender(self._client), self.stats, capacity=config.log_buffer_lines)
        self._duties = Duties()
        self._signals = Signals(config.grace_period_s, self.shutdown, self._pool.kill)
        self._shutdown = Shutdown(
            config, self._duties, self._lease, self._pool, self._outbox, self._logs, self._grants, self._finish
        )
        self._metrics_server: Any = None

    # -- public ----------------------------------------------------------------------------------------------------

    @property
    def job(self) -> JobRegistration | None:
        """The job this triggerer runs as now (a new one after a lost lease)."""
        return self._lease.job

    @property
    def held(self) -> frozenset[int]:
        """The trigger ids the server says this job holds."""
        return self._registry.held

    @property
    def running(self) -> int:
        """Trigger coroutines running in the runners."""
        return self._pool.running

    @property
    def queue_depth(self) -> int:
        """Events and failures not delivered yet."""
        return len(self._outbox)

    @property
    def pool(self) -> RunnerPool:
        """The runner processes."""
        return self._pool

    def shutdown(self) -> None:
        """Start a graceful stop (idempotent)."""
        self._stop.set()

    async def run(self, *, handle_signals: bool = True) -> int:
        """Register, run until stopped (or the lease ends, with ``exit_on_lost_lease``), and return the exit code.

        With ``handle_signals`` the first SIGTERM/SIGINT stops gracefully and a second exits at once.
        """
        try:
            job = await self._lease.register()
        except TocsinError as exc:
            _log.critical("the server refused to register this triggerer: %s", exc)
            await self._client.aclose()
            return EXIT_REFUSED
        if job is None:  # stopped while the server was unreachable
            await self._client.aclose()
            return EXIT_OK
        self._lease.adopt(job)
        if handle_signals:
            self._signals.install()
        await self._pool.start()
        self._start_metrics()
        # Duties that outlive a lease: what is queued under one job is still delivered (or judged) under the next.
        self._duties.start(LOG_SHIPPING, self._logs.run())
        for n in range(self._outbox.concurrency):
            self._duties.start(f"{DELIVERY} {n}", self._outbox.work())
        return await self._serve()

    async def _serve(self) -> int:
        """Run the duties until stopped, a duty crashes, or the lease ends (then register again, or exit)."""
        while True:
            self._duties.start(HEARTBEAT, self._lease.heartbeats())
            self._duties.start(CLAIM_CYCLE, self._claims.cycles())
            try:
                await self._duties.watch(self._stop)
            except DutyCrashedError as crash:
                for name, error in crash.crashes:
                    _log.critical(
                        "the %s duty crashed: %s; stopping (exit code %d)", name, error, EXIT_CRASHED, exc_info=error
                    )
                await self._shutdown.graceful()
                return EXIT_CRASHED
            except LostLeaseError:
                if self.config.exit_on_lost_lease:
                    await self._shutdown.fenced()
                    return EXIT_FENCED
            else:
                await self._shutdown.graceful()
                return EXIT_OK
            await self._duties.cancel(HEARTBEAT, CLAIM_CYCLE)
            match await self._rejoin():
                case None:  # stopped while registering again
                    await self._shutdown.graceful()
                    return EXIT_OK
                case int() as code:
                    await self._shutdown.fenced()
                    return code
                case job:
                    self._lease.adopt(job)

    async def _rejoin(self) -> JobRegistration | int | None:
        """After a lost lease: forget the old job's claims and register a new job (the triggers keep running).

        The new job's first load is a full one: what it holds and does not run yet starts, what runs here and it
        does not hold is cancelled then. Returns the new registration, None when stopped meanwhile, or an exit code.
        """
        assert self.job is not None
        self.stats.leases_lost += 1
        _log.warning(
            "job %s lost its lease (the server released its %d triggers); registering a new job",
            self.job.job_id,
            self._registry.held_count,
        )
        self._claims.lease_ended()
        self._outbox.lease += 1  # what is queued now belongs to the lease that ended
        try:
            return await self._lease.register()
        except TocsinError as exc:
            _log.critical("the server refused to register this triggerer again: %s", exc)
            return EXIT_REFUSED

    # -- reports from runners --------------------------------------------------------------------------------------

    def _on_report(self, report: Report) -> None:
        for event in report.events:
            self._outbox.put_event(event)
        for failure in report.failures:
            self.stats.trigger_failures += 1
            self._outbox.put_failure(failure)
        if report.logs or report.logs_dropped:
            self._logs.add(report.logs, report.logs_dropped)

    def _on_token_request(self, trigger_id: int) -> None:
        self._grants.request(trigger_id)

    def _on_lost(self, trigger_ids: set[int]) -> None:
        self._claims.runner_lost(trigger_ids)

    def _on_quarantine(self, trigger_id: int, crashes: int, code: int | None) -> None:
        """A trigger killed its runner on every start: fail its task with the reason instead of looping."""
        self.stats.quarantined += 1
        self.stats.trigger_failures += 1
        error = (
            f"quarantined: trigger {trigger_id} killed its triggerer's runner process {crashes} times as it started "
            f"(last exit code {code}); it is not started again"
        )
        self._outbox.put_failure(FailureOut(trigger_id, error, []))

    # -- wiring ----------------------------------------------------------------------------------------------------

    def _start_metrics(self) -> None:
        if self.config.metrics_port is None:
            return
        from tocsin_client.triggerer.metrics import serve_metrics  # noqa: PLC0415 - only when asked for

        self._metrics_server = serve_metrics(self, self.config.metrics_host, self.config.metrics_port)

    async def _finish(self) -> None:
        self._signals.remove()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        await self._client.aclose()
