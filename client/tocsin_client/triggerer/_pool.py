"""The supervisor's side of its runner processes: spawn, dispatch, read reports, judge liveness, stop.

Each runner is ``python -m tocsin_client.triggerer.runner`` with one end of a socket pair; frames are
``_frames`` messages. A runner that exits unexpectedly is restarted after a backoff that grows while it keeps
dying, and the supervisor is told which triggers it held, so they are fetched and started again. ``CrashGuard``
blames a crash on the trigger(s) that were starting: suspects start again apart from the others, and one that
killed its runner ``QUARANTINE_AFTER`` times is quarantined (``on_quarantine``) instead of started again.
Which trigger is placed on which runner, parked or quarantined is the ``Registry``'s to know, not the pool's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

import msgspec

from tocsin_client.triggerer._backoff import backoff_delay
from tocsin_client.triggerer._crashes import CrashGuard
from tocsin_client.triggerer._frames import (
    Bye,
    Cancel,
    FrameError,
    Hello,
    Job,
    Report,
    Shutdown,
    Start,
    Tick,
    TokenGrant,
    TokenRequest,
    ToSupervisor,
    encode,
    read_frame,
)

if TYPE_CHECKING:
    from tocsin_client.generated.models import RunTrigger
    from tocsin_client.triggerer._registry import Registry
    from tocsin_client.triggerer.config import TriggererConfig

__all__ = ["RunnerPool"]

_log = logging.getLogger("tocsin.triggerer")
START_BATCH: Final = 500
RESTART_BASE_S: Final = 0.5  # first restart delay of a runner that died; doubles while it keeps dying
RESTART_MAX_S: Final = 30.0
STABLE_S: Final = 30.0  # a runner up this long before it died starts its backoff afresh


class _Runner:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.last_tick = time.monotonic()
        self.lag_s = 0.0
        self.peak_lag_s = 0.0
        self.running = 0
        self.blocked_total = 0
        self.ready = asyncio.Event()
        self.bye = asyncio.Event()
        self.stopping = False
        self.spawned_at = time.monotonic()
        self.crashes = 0  # in a row, for the restart backoff

    def send(self, frame: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(frame)


class RunnerPool:
    """K runner processes; ``registry`` keeps which triggers each holds.

    Args:
        config: The triggerer's settings.
        registry: The triggerer's books of held and running triggers.
        on_report: Called with each ``Report`` a runner sends.
        on_lost: Called with the trigger ids a runner held when it died unexpectedly.
        on_token_request: Called with a trigger id whose task-instance token expired; answer with ``grant``.
        on_quarantine: Called with a trigger id that killed its runner too often, the crash count and the last
            exit code; the pool never starts it again (until it is cancelled).
    """

    def __init__(
        self,
        config: TriggererConfig,
        registry: Registry,
        on_report: Callable[[Report], None],
        on_lost: Callable[[set[int]], None],
        on_token_request: Callable[[int], None] | None = None,
        on_quarantine: Callable[[int, int, int | None], None] | None = None,
        *,
        guard: CrashGuard | None = None,
    ) -> None:
        self._config = config
        self._registry = registry
        self._on_report = on_report
        self._on_lost = on_lost
        self._on_token_request = on_token_request
        self._on_quarantine = on_quarantine
        self._guard = guard or CrashGuard()
        self._runners = [_Runner(index) for index in range(config.runners)]
        self._last_tidy = time.monotonic()
        self._closing = False
        self._job_id: int | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self, timeout_s: float = 30.0) -> None:
        """Spawn every runner and wait until each said hello."""
        for runner in self._runners:
            await self._spawn(runner)
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(runner.ready.wait() for runner in self._runners))

    async def _spawn(self, runner: _Runner) -> None:
        ours, theirs = socket.socketpair()
        command = [
            sys.executable,
            "-m",
            "tocsin_client.triggerer.runner",
            "--fd",
            str(theirs.fileno()),
            "--index",
            str(runner.index),
            "--api-url",
            self._config.api_url,
            "--block-threshold",
            str(self._config.block_threshold_s),
        ]
        for pattern in self._config.allowed:
            command += ["--allow", pattern]
        try:
            runner.process = await asyncio.create_subprocess_exec(*command, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        if runner.writer is not None:
            runner.writer.close()
        reader, runner.writer = await asyncio.open_connection(sock=ours, limit=2**20)
        runner.ready.clear()
        runner.bye.clear()
        runner.last_tick = runner.spawned_at = time.monotonic()
        runner.reader_task = asyncio.create_task(self._read(runner, reader), name=f"tocsin-runner-{runner.index}")
        if self._job_id is not None:
            runner.send(encode(Job(job_id=self._job_id)))

    def tell_job(self, job_id: int) -> None:
        """The job every runner's log lines name from now on (also a runner spawned later)."""
        self._job_id = job_id
        for runner in self._runners:
            runner.send(encode(Job(job_id=job_id)))

    async def stop(self, timeout_s: float) -> None:
        """Ask every runner to cancel its triggers and report what is left; kill those that do not finish."""
        self._closing = True
        for runner in self._runners:
            runner.stopping = True
            runner.send(encode(Shutdown(timeout_s=max(0.1, timeout_s - 0.5))))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s + 1.0):
                await asyncio.gather(*(self._wait_exit(runner) for runner in self._runners))
        self.kill()
        for runner in self._runners:
            if runner.reader_task is not None:
                runner.reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner.reader_task
            if runner.writer is not None:
                runner.writer.close()
                with contextlib.suppress(ConnectionError):
                    await runner.writer.wait_closed()
            if runner.process is not None:
                await runner.process.wait()

    async def _wait_exit(self, runner: _Runner) -> None:
        if runner.process is not None:
            await runner.process.wait()

    def kill(self) -> None:
        """Kill every runner process now."""
        self._closing = True
        for runner in self._runners:
            if runner.process is not None and runner.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    runner.process.kill()

    # -- dispatch --------------------------------------------------------------------------------------------------

    def assign(self, workloads: Iterable[RunTrigger]) -> int:
        """Start each workload on the runner holding the fewest triggers; returns how many were sent.

        A suspect of a runner crash is parked instead, and starts when ``CrashGuard`` gives its group the turn.
        """
        admitted = []
        for workload in workloads:
            trigger_id = workload.trigger_id
            if not self._registry.placeable(trigger_id):
                continue
            if self._guard.admit(trigger_id):
                admitted.append(workload)
            else:
                self._registry.park(workload)
        sent = self._send(admitted)
        self._release()
        return sent

    def _release(self) -> None:
        """Start the next group of parked suspects when its turn came."""
        now = time.monotonic()
        if now - self._last_tidy > self._guard.probation_s:
            self._last_tidy = now
            self._guard.tidy(now)
        if not self._registry.has_parked or self._closing:
            return
        group = self._guard.release(now)
        if workloads := self._registry.unpark(group):
            _log.warning("starting %d trigger(s) suspected of crashing a runner apart: %s", len(workloads), group)
            self._send(workloads)

    def _send(self, workloads: Iterable[RunTrigger]) -> int:
        batches: dict[int, list[RunTrigger]] = {}
        sent = 0
        now = time.monotonic()
        for workload in workloads:
            if self._registry.runner_of(workload.trigger_id) is not None:
                continue
            self._guard.started(workload.trigger_id, now)
            index = self._registry.lightest()
            self._registry.place(workload.trigger_id, index)
            batches.setdefault(index, []).append(workload)
            sent += 1
        for index, batch in batches.items():
            for offset in range(0, len(batch), START_BATCH):
                self._runners[index].send(encode(Start(workloads=batch[offset : offset + START_BATCH])))
        return sent

    def cancel(self, trigger_ids: Iterable[int]) -> None:
        """Cancel triggers wherever they run and forget them."""
        trigger_ids = list(trigger_ids)
        for trigger_id in trigger_ids:
            self._guard.forget(trigger_id)
        for index, ids in self._registry.forget(trigger_ids).items():
            self._runners[index].send(encode(Cancel(trigger_ids=ids)))

    def stop_trigger(self, trigger_id: int) -> None:
        """Cancel a trigger but remember it as handled, so it is not started again while the server lists it."""
        index = self._registry.stop(trigger_id)
        if index is not None:
            self._runners[index].send(encode(Cancel(trigger_ids=[trigger_id])))

    def grant(self, trigger_id: int, token: str | None) -> None:
        """Answer a runner's token request."""
        index = self._registry.runner_of(trigger_id)
        if index is not None:
            self._runners[index].send(encode(TokenGrant(trigger_id=trigger_id, token=token)))

    # -- health ----------------------------------------------------------------------------------------------------

    @property
    def running(self) -> int:
        """Trigger coroutines running, as the runners last reported."""
        return sum(runner.running for runner in self._runners)

    @property
    def blocked_total(self) -> int:
        """Loop blocks the watchdogs have seen."""
        return sum(runner.blocked_total for runner in self._runners)

    def lags(self) -> dict[int, float]:
        """Loop lag per runner, seconds."""
        return {runner.index: runner.lag_s for runner in self._runners}

    def peak_lag_s(self, *, reset: bool = False) -> float:
        """The longest loop stall any runner reported (since the last reset), seconds."""
        peak = max((runner.peak_lag_s for runner in self._runners), default=0.0)
        if reset:
            for runner in self._runners:
                runner.peak_lag_s = 0.0
        return peak

    def stalled(self, threshold_s: float) -> list[int]:
        """Runners whose loop has not reported progress within ``threshold_s``."""
        if threshold_s <= 0:
            return []
        now = time.monotonic()
        return [runner.index for runner in self._runners if now - runner.last_tick > threshold_s]

    # -- reading ---------------------------------------------------------------------------------------------------

    async def _read(self, runner: _Runner, reader: asyncio.StreamReader) -> None:
        decoder: msgspec.msgpack.Decoder[ToSupervisor] = msgspec.msgpack.Decoder(ToSupervisor)
        try:
            while (frame := await read_frame(reader, decoder)) is not None:
                runner.last_tick = time.monotonic()
                if isinstance(frame, Report):
                    self._on_report(frame)
                elif isinstance(frame, Tick):
                    runner.running, runner.lag_s, runner.blocked_total = frame.running, frame.lag_s, frame.blocked_total
                    runner.peak_lag_s = max(runner.peak_lag_s, frame.max_lag_s)
                    self._release()  # a live runner: the suspects on trial may have passed their probation
                elif isinstance(frame, TokenRequest):
                    if self._on_token_request is None:
                        runner.send(encode(TokenGrant(trigger_id=frame.trigger_id, token=None)))
                    else:
                        self._on_token_request(frame.trigger_id)
                elif isinstance(frame, Hello):
                    _log.info("runner %s started (pid %s)", runner.index, frame.pid)
                    runner.ready.set()
                elif isinstance(frame, Bye):
                    runner.bye.set()
        except FrameError:
            _log.exception("runner %s sent a broken frame", runner.index)
        except ConnectionError:
            pass
        if runner.process is not None and runner.process.returncode is None and not runner.bye.is_set():
            with contextlib.suppress(ProcessLookupError):
                runner.process.kill()
        if not (self._closing or runner.stopping):
            await self._restart(runner)

    async def _restart(self, runner: _Runner) -> None:
        code = await runner.process.wait() if runner.process is not None else None
        now = time.monotonic()
        runner.crashes = 1 if now - runner.spawned_at >= STABLE_S else runner.crashes + 1
        held = self._registry.on_runner(runner.index)
        verdict = self._guard.crashed(held, now)
        delay = backoff_delay(runner.crashes, base_s=RESTART_BASE_S, max_s=RESTART_MAX_S)
        blame = f"; it was starting {sorted(verdict.suspects)}" if verdict.suspects else ""
        _log.error(
            "runner %s exited unexpectedly (code %s) holding %d triggers%s; restarting in %.1f s (crash %d in a row)",
            runner.index,
            code,
            len(held),
            blame,
            delay,
            runner.crashes,
        )
        for trigger_id, crashes in verdict.quarantined.items():
            _log.error(
                "trigger %s killed its runner process %d times as it started: quarantined, not started again",
                trigger_id,
                crashes,
            )
            self._registry.quarantine(trigger_id)
            if self._on_quarantine is not None:
                self._on_quarantine(trigger_id, crashes, code)
        await asyncio.sleep(delay)
        if self._closing:
            return
        await self._spawn(runner)
        # Only now forget what it held: until the new process is up, nothing may be dispatched to this slot.
        lost = self._registry.runner_lost(runner.index)
        runner.running = 0
        self._on_lost(lost)
