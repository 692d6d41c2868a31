"""``Triggerer``: the supervisor. It owns every API call of the job and keeps them apart from the trigger loops.

One asyncio loop, four duties, each its own task:

- heartbeat: on the interval the server gave at registration, but only while every runner loop shows progress;
- cycle: ``load`` (delta form after the first answer), diff against what runs, fetch workloads for new ids,
  dispatch them to the runners, cancel the removed, call ``cleanup`` now and then;
- outbox: deliver events and failures the moment runners report them (see ``_outbox``);
- logs: ship per-trigger log lines in batches (see ``_logship``).

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
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from tocsin_client._client import AsyncClient
from tocsin_client.errors import ConflictError, TocsinError
from tocsin_client.generated import models
from tocsin_client.generated.models import JobRegistration, JobRegistrationBody, TriggerLoadBody, WorkloadsBody
from tocsin_client.triggerer._backoff import backoff_delay
from tocsin_client.triggerer._frames import FailureOut, LogLine, Report
from tocsin_client.triggerer._logship import LogShipper
from tocsin_client.triggerer._outbox import Outbox
from tocsin_client.triggerer._pool import RunnerPool
from tocsin_client.triggerer._stats import Stats

if TYPE_CHECKING:
    from tocsin_client._http import httpx
    from tocsin_client.triggerer.config import TriggererConfig

__all__ = ["EXIT_CRASHED", "EXIT_FENCED", "EXIT_OK", "EXIT_REFUSED", "Triggerer"]

EXIT_OK: Final = 0
EXIT_CRASHED: Final = 1  # a supervisor duty crashed (heartbeat, claim cycle, log shipping, delivery)
EXIT_REFUSED: Final = 2  # the server refused to register the job (token, scope, version)
EXIT_FENCED: Final = 3  # the lease ended and ``exit_on_lost_lease`` asks to exit rather than register again
EXIT_KILLED: Final = 130
WORKLOAD_CHUNK: Final = 10_000  # WorkloadsBody.trigger_ids maxItems
_log = logging.getLogger("tocsin.triggerer")
_LEVELS: Final = {"DEBUG": "debug", "INFO": "info", "WARNING": "warning", "ERROR": "error", "CRITICAL": "critical"}


class _FencedError(Exception):
    """The server answered 409 to a heartbeat or a load."""


class Triggerer:
    """One triggerer job: ``await Triggerer(config).run()`` returns the process exit code.

    Args:
        config: Validated settings.
        transport: An httpx transport for the job's API calls instead of the network (tests).
    """

    def __init__(self, config: TriggererConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.stats = Stats()
        self._client = AsyncClient(
            config.api_url, token=config.token, api_version=config.api_version, transport=transport
        )
        # Registration needs the triggerer-scoped token; every later call uses the job's own token.
        self._registrar = self._client.with_token(config.token)
        self._pool = RunnerPool(config, self._on_report, self._on_lost, self._on_token_request, self._on_quarantine)
        self._token_tasks: set[asyncio.Task[None]] = set()
        self._outbox = Outbox(
            self._client,
            self.stats,
            self._on_conflict,
            concurrency=config.delivery_concurrency,
            retry_base_s=config.retry_base_s,
            retry_max_s=config.retry_max_s,
        )
        self._logs = LogShipper(self._log_sender(), self.stats, capacity=config.log_buffer_lines)
        self._stop = asyncio.Event()
        self._signals = 0
        self.job: JobRegistration | None = None
        self._held: set[int] = set()
        self._pending: set[int] = set()  # held, not dispatched to a runner yet
        self._version: str | None = None
        self._last_cleanup = 0.0
        self._wake_cycle = asyncio.Event()
        self._metrics_server: Any = None

    # -- public ----------------------------------------------------------------------------------------------------

    @property
    def held(self) -> frozenset[int]:
        """The trigger ids the server says this job holds."""
        return frozenset(self._held)

    @property
    def running(self) -> int:
        """Trigger coroutines running in the runners."""
        return self._pool.running

    @property
    def queue_depth(self) -> int:
        """Events and failures not delivered yet."""
        return len(self._outbox)

    def shutdown(self) -> None:
        """Start a graceful stop (idempotent)."""
        self._stop.set()

    async def run(self, *, handle_signals: bool = True) -> int:
        """Register, run until stopped (or the lease ends, with ``exit_on_lost_lease``), and return the exit code.

        With ``handle_signals`` the first SIGTERM/SIGINT stops gracefully and a second exits at once.
        """
        try:
            self.job = await self._register()
        except TocsinError as exc:
            _log.critical("the server refused to register this triggerer: %s", exc)
            await self._client.aclose()
            return EXIT_REFUSED
        if self.job is None:  # stopped while the server was unreachable
            await self._client.aclose()
            return EXIT_OK
        self._adopt(self.job)
        if handle_signals:
            self._install_signals()
        await self._pool.start()
        self._start_metrics()
        self._outbox.start()
        return await self._serve()

    async def _serve(self) -> int:
        """Run the duties until stopped, a duty crashes, or the lease ends (then register again, or exit)."""
        logs = [asyncio.create_task(self._logs.run(), name="log shipping")] if self._logs.enabled else []
        stop = asyncio.create_task(self._stop.wait(), name="tocsin-stop")
        while True:
            session = [
                asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
                asyncio.create_task(self._cycle_loop(), name="claim cycle"),
            ]
            watched = [*session, *logs, *self._outbox.workers, stop]
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if crashed := _crashed(done - {stop}, self._stop.is_set()):
                for name, error in crashed:
                    _log.critical(
                        "the %s duty crashed: %s; stopping (exit code %d)",
                        name,
                        error,
                        EXIT_CRASHED,
                        exc_info=error,
                    )
                await self._stop_gracefully(session, logs, stop)
                return EXIT_CRASHED
            if stop in done or not any(isinstance(_error(task), _FencedError) for task in done):
                return await self._stop_gracefully(session, logs, stop)
            if self.config.exit_on_lost_lease:
                return await self._stop_fenced([*session, *logs], stop)
            for task in session:
                await _cancel(task)
            match await self._rejoin():
                case JobRegistration() as job:
                    self._adopt(job)
                case None:  # stopped while registering again
                    return await self._stop_gracefully(session, logs, stop)
                case int() as code:
                    await self._stop_fenced(logs, stop)
                    return code

    def _adopt(self, job: JobRegistration) -> None:
        self.job = job
        self._client.token = job.token
        _log.info(
            "registered job %s (capacity %s, heartbeat every %.1f s)",
            job.job_id,
            job.capacity,
            job.heartbeat_interval_s,
        )

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
            len(self._held),
        )
        self._held.clear()
        self._pending.clear()
        self._version = None
        # Triggers this lease stopped on a 409 may belong to the new job: they start again if it holds them.
        self._pool.cancel(self._pool.stopped())
        self._outbox.lease += 1  # what is queued now belongs to the lease that ended
        self.stats.held = 0
        try:
            return await self._register()
        except TocsinError as exc:
            _log.critical("the server refused to register this triggerer again: %s", exc)
            return EXIT_REFUSED

    # -- registration and heartbeats -------------------------------------------------------------------------------

    async def _register(self) -> JobRegistration | None:
        body = JobRegistrationBody(hostname=self.config.hostname, pid=os.getpid(), capacity=self.config.capacity)
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

    async def _heartbeat_loop(self) -> None:
        assert self.job is not None
        interval = self.job.heartbeat_interval_s
        while True:
            await self._heartbeat_once()
            await asyncio.sleep(interval)

    async def _heartbeat_once(self) -> None:
        assert self.job is not None
        stalled = self._pool.stalled(self.config.runner_health_threshold_s)
        if stalled:
            if self.stats.healthy:
                _log.critical(
                    "runner loop(s) %s made no progress for %.0f s: not heartbeating until they do",
                    stalled,
                    self.config.runner_health_threshold_s,
                )
            self.stats.healthy = False
            return
        if not self.stats.healthy:
            _log.warning("every runner loop makes progress again: heartbeating")
        self.stats.healthy = True
        try:
            await self._client.heartbeat_job(self.job.job_id)
        except ConflictError as exc:
            _log.critical("heartbeat refused: %s; stopping every trigger", exc)
            raise _FencedError from exc
        except TocsinError as exc:
            self.stats.api_error("heartbeatJob")
            level = logging.WARNING if exc.transient else logging.ERROR
            _log.log(level, "heartbeat failed: %s", exc)
        else:
            self.stats.last_heartbeat = time.monotonic()

    # -- the claim cycle -------------------------------------------------------------------------------------------

    async def _cycle_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                grew = await self._cycle_once()
            except _FencedError:
                raise
            except TocsinError as exc:
                failures += 1
                level = logging.WARNING if exc.transient else logging.ERROR
                _log.log(level, "claim cycle failed: %s", exc)
                await self._pause(backoff_delay(failures, base_s=self.config.cycle_interval_s, max_s=30.0))
                continue
            failures = 0
            if not grew:
                await self._pause(self.config.cycle_interval_s)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake_cycle.wait()
        self._wake_cycle.clear()

    async def _cycle_once(self) -> bool:
        """One claim cycle; True when new triggers arrived (the server may hold more to give right away)."""
        try:
            answer = await self._client.load_triggers(TriggerLoadBody(known_version=self._version))
        except ConflictError as exc:
            _log.critical("load refused: %s; stopping every trigger", exc)
            raise _FencedError from exc
        except TocsinError:
            self.stats.api_error("loadTriggers")
            raise
        # A delta answer costs work in proportion to the change, not to the 100,000 triggers held.
        if answer.full:
            self._held = set(answer.trigger_ids)
            dispatched = self._pool.dispatched()
            removed = dispatched - self._held
            self._pending = self._held - dispatched
        else:
            removed = {trigger_id for trigger_id in answer.removed if trigger_id in self._pool}
            self._held.difference_update(answer.removed)
            self._held.update(answer.added)
            self._pending.difference_update(answer.removed)
            self._pending.update(trigger_id for trigger_id in answer.added if trigger_id not in self._pool)
        self._version = answer.version
        self.stats.held = len(self._held)
        if removed:
            _log.info("cancelling %d triggers this job no longer holds", len(removed))
            self._pool.cancel(removed)
        started = await self._start() if self._pending else 0
        await self._maybe_cleanup()
        return bool(answer.added) or (answer.full and started > 0)

    async def _start(self) -> int:
        """Fetch the workloads of the held triggers not running yet and dispatch them; how many started."""
        pending = sorted(self._pending)
        started = 0
        for offset in range(0, len(pending), WORKLOAD_CHUNK):
            chunk = pending[offset : offset + WORKLOAD_CHUNK]
            try:
                answer = await self._client.get_trigger_workloads(WorkloadsBody(trigger_ids=chunk))
            except TocsinError:
                self.stats.api_error("getTriggerWorkloads")
                raise
            if self._stop.is_set():
                break
            # Ids left out of the answer are no longer this job's; the next load says so.
            self._pending.difference_update(chunk)
            started += self._pool.assign(answer.workloads)
        if started:
            _log.info("started %d triggers", started)
        return started

    async def _maybe_cleanup(self) -> None:
        now = time.monotonic()
        if now - self._last_cleanup < self.config.cleanup_interval_s:
            return
        self._last_cleanup = now
        try:
            await self._client.cleanup_triggers()
        except TocsinError as exc:
            self.stats.api_error("cleanupTriggers")
            _log.warning("cleanup failed: %s", exc)

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
        """A trigger's task-instance token expired: its workload, fetched again, carries a fresh one."""
        task = asyncio.create_task(self._grant_token(trigger_id))
        self._token_tasks.add(task)
        task.add_done_callback(self._token_tasks.discard)

    async def _grant_token(self, trigger_id: int) -> None:
        token = None
        try:
            answer = await self._client.get_trigger_workloads(WorkloadsBody(trigger_ids=[trigger_id]))
            token = next((w.token for w in answer.workloads if w.trigger_id == trigger_id), None)
            _log.info("trigger %s: its task-instance token expired; %s", trigger_id, "renewed" if token else "not held")
        except TocsinError as exc:
            self.stats.api_error("getTriggerWorkloads")
            _log.warning("trigger %s: no fresh token: %s", trigger_id, exc)
        self._pool.grant(trigger_id, token)

    def _on_conflict(self, trigger_id: int, stale: bool) -> None:
        """An event or failure got 409: the trigger is not this job's.

        Of this lease: cancel it, but keep it as handled so it is not started again while a load lists it. Of a
        lease that ended (queued before a new job registered): forget it, so that if the new job holds it, it
        starts again and fires again; its workload comes back only if the job really holds it.
        """
        if not stale:
            self._pool.stop_trigger(trigger_id)
            return
        self._pool.cancel([trigger_id])
        if trigger_id in self._held:
            self._pending.add(trigger_id)
            self._wake_cycle.set()

    def _on_quarantine(self, trigger_id: int, crashes: int, code: int | None) -> None:
        """A trigger killed its runner on every start: fail its task with the reason instead of looping."""
        self.stats.quarantined += 1
        self.stats.trigger_failures += 1
        error = (
            f"quarantined: trigger {trigger_id} killed its triggerer's runner process {crashes} times as it started "
            f"(last exit code {code}); it is not started again"
        )
        self._outbox.put_failure(FailureOut(trigger_id, error, []))

    def _on_lost(self, trigger_ids: set[int]) -> None:
        """A runner died: its triggers are started again on the next cycle, which starts now."""
        self._pending.update(trigger_ids & self._held)
        self._wake_cycle.set()

    # -- stopping --------------------------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            _log.warning(
                "%s: stopping; delivering queued events for up to %.0f s (again to exit at once)",
                sig.name,
                self.config.grace_period_s,
            )
            self.shutdown()
            return
        _log.warning("%s again: exiting now", sig.name)
        self._pool.kill()
        os._exit(EXIT_KILLED)

    async def _stop_gracefully(
        self, session: list[asyncio.Task[Any]], logs: list[asyncio.Task[Any]], stop: asyncio.Task[Any]
    ) -> int:
        assert self.job is not None
        deadline = time.monotonic() + self.config.grace_period_s
        heartbeat, cycle = session
        await _cancel(cycle)  # stop claiming first
        await self._pool.stop(timeout_s=min(5.0, max(0.5, self.config.grace_period_s / 2)))
        delivered = await self._outbox.drain(max(0.0, deadline - time.monotonic()))
        if not delivered:
            _log.warning("grace period over with %d events or failures undelivered", len(self._outbox))
        await self._outbox.close()
        for task in logs:
            await _cancel(task)
        try:
            async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                await self._logs.flush()
        except TimeoutError:
            _log.warning("grace period over with %d log lines unshipped", len(self._logs))
        except Exception:  # noqa: BLE001 - a broken log shipper (reported already) must not stop the completion
            _log.exception("could not ship the last log lines")
        await _cancel(heartbeat)
        await _cancel(stop)
        try:
            await self._client.complete_job(self.job.job_id)
            _log.info("job %s completed; its triggers go to other triggerers now", self.job.job_id)
        except TocsinError as exc:
            _log.error("could not complete job %s: %s", self.job.job_id, exc)
        await self._finish()
        return EXIT_OK

    async def _stop_fenced(self, duties: Iterable[asyncio.Task[Any]], stop: asyncio.Task[Any]) -> int:
        for task in [*duties, stop]:
            await _cancel(task)
        await self._pool.stop(timeout_s=2.0)
        await self._outbox.close()
        await self._finish()
        return EXIT_FENCED

    async def _finish(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        await self._client.aclose()

    # -- wiring ----------------------------------------------------------------------------------------------------

    def _log_sender(self) -> Any:
        """``shipTriggerLogs`` when this client's API version has it (2026-12-01), else None."""
        ship = getattr(self._client, "ship_trigger_logs", None)
        batch_type = getattr(models, "TriggerLogBatch", None)
        line_type = getattr(models, "TriggerLogLine", None)
        if ship is None or batch_type is None or line_type is None:
            return None

        async def send(lines: list[LogLine], dropped: int) -> None:
            wire = [
                line_type(
                    trigger_id=line.trigger_id,
                    timestamp=datetime.fromtimestamp(line.created, UTC),
                    level=_LEVELS.get(line.level, "info"),
                    event=line.message,
                    task_instance_id=UUID(line.task_instance_id) if line.task_instance_id else None,
                    try_number=line.try_number,
                    extra={"logger": line.logger},
                )
                for line in lines
            ]
            await ship(batch_type(lines=wire, dropped=dropped))

        return send

    def _start_metrics(self) -> None:
        if self.config.metrics_port is None:
            return
        from tocsin_client.triggerer.metrics import serve_metrics  # noqa: PLC0415 - only when asked for

        self._metrics_server = serve_metrics(self, self.config.metrics_host, self.config.metrics_port)

    @property
    def pool(self) -> RunnerPool:
        """The runner processes."""
        return self._pool


def _error(task: asyncio.Task[Any]) -> BaseException | None:
    return None if task.cancelled() else task.exception()


def _crashed(done: Iterable[asyncio.Task[Any]], stopping: bool) -> list[tuple[str, BaseException]]:
    """The duties that ended by a bug: an exception other than a lost lease, or a return while not stopping."""
    crashed: list[tuple[str, BaseException]] = []
    for task in done:
        error = _error(task)
        if isinstance(error, _FencedError):
            continue
        if error is None and not stopping:
            error = RuntimeError("it returned while the triggerer was running")
        if error is not None:
            crashed.append((task.get_name(), error))
    return crashed


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
