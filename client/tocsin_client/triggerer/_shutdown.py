"""Shutdown ordering, and the signals that start it.

A graceful stop (the first SIGTERM/SIGINT, ``Triggerer.shutdown``, or a crashed duty) goes in this order, because
each step feeds the next: stop claiming (no new trigger starts); stop the runners (their triggers are cancelled and
their last reports arrive); deliver what is queued within the grace period; ship the last log lines; stop the
heartbeat only then (the lease must not lapse while events still go out); complete the job, so its triggers go to
other triggerers at once instead of after the liveness threshold. A second signal exits at once (130).

A fenced stop (the lease ended and ``exit_on_lost_lease`` asks to exit, or a new job was refused) delivers nothing:
the server no longer takes this job's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from tocsin_client.triggerer._duties import Duties
    from tocsin_client.triggerer._grants import TokenGrants
    from tocsin_client.triggerer._lease import Lease
    from tocsin_client.triggerer._logship import LogShipper
    from tocsin_client.triggerer._outbox import Outbox
    from tocsin_client.triggerer._pool import RunnerPool
    from tocsin_client.triggerer.config import TriggererConfig

__all__ = ["EXIT_CRASHED", "EXIT_FENCED", "EXIT_KILLED", "EXIT_OK", "EXIT_REFUSED", "Shutdown", "Signals"]

EXIT_OK: Final = 0
EXIT_CRASHED: Final = 1  # a supervisor duty crashed (heartbeat, claim cycle, log shipping, delivery)
EXIT_REFUSED: Final = 2  # the server refused to register the job (token, scope, version)
EXIT_FENCED: Final = 3  # the lease ended and ``exit_on_lost_lease`` asks to exit rather than register again
EXIT_KILLED: Final = 130
HEARTBEAT: Final = "heartbeat"
CLAIM_CYCLE: Final = "claim cycle"
LOG_SHIPPING: Final = "log shipping"
DELIVERY: Final = "event delivery"  # one duty per delivery worker: "event delivery 0", "event delivery 1", ...
_log = logging.getLogger("tocsin.triggerer")


class Shutdown:
    """Stops the triggerer's parts in order; see the module docstring."""

    def __init__(
        self,
        config: TriggererConfig,
        duties: Duties,
        lease: Lease,
        pool: RunnerPool,
        outbox: Outbox,
        logs: LogShipper,
        grants: TokenGrants,
        finish: Callable[[], Awaitable[None]],
    ) -> None:
        self._config = config
        self._duties = duties
        self._lease = lease
        self._pool = pool
        self._outbox = outbox
        self._logs = logs
        self._grants = grants
        self._finish = finish

    async def graceful(self) -> None:
        """Stop claiming, stop the runners, deliver and ship within the grace period, then complete the job."""
        grace = self._config.grace_period_s
        deadline = time.monotonic() + grace
        await self._duties.cancel(CLAIM_CYCLE)
        await self._pool.stop(timeout_s=min(5.0, max(0.5, grace / 2)))
        await self._grants.close()  # no runner is left to hear an answer
        if not await self._outbox.drain(max(0.0, deadline - time.monotonic())):
            _log.warning("grace period over with %d events or failures undelivered", len(self._outbox))
        await self._duties.cancel(*self._duties.names(DELIVERY))
        await self._outbox.close()
        await self._duties.cancel(LOG_SHIPPING)
        try:
            async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                await self._logs.flush()
        except TimeoutError:
            _log.warning("grace period over with %d log lines unshipped", len(self._logs))
        except Exception:  # noqa: BLE001 - a broken log shipper (reported already) must not stop the completion
            _log.exception("could not ship the last log lines")
        await self._duties.cancel(HEARTBEAT)
        await self._lease.complete()
        await self._finish()

    async def fenced(self) -> None:
        """Stop everything without delivering: the server no longer counts this job."""
        await self._duties.cancel_all()
        await self._pool.stop(timeout_s=2.0)
        await self._grants.close()
        await self._outbox.close()
        await self._finish()


class Signals:
    """The first SIGTERM/SIGINT calls ``on_stop``; a second kills the runners and exits at once.

    Args:
        grace_period_s: Named in the log line of the first signal.
        on_stop: Starts a graceful stop.
        kill: Kills the runner processes (they would outlive an ``os._exit``).
    """

    def __init__(self, grace_period_s: float, on_stop: Callable[[], None], kill: Callable[[], None]) -> None:
        self._grace_period_s = grace_period_s
        self._on_stop = on_stop
        self._kill = kill
        self._count = 0

    def install(self) -> None:
        """Handle SIGTERM and SIGINT on the running loop (where the platform allows it)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def remove(self) -> None:
        """Give the signals back to their default handling."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._count += 1
        if self._count == 1:
            _log.warning(
                "%s: stopping; delivering queued events for up to %.0f s (again to exit at once)",
                sig.name,
                self._grace_period_s,
            )
            self._on_stop()
            return
        _log.warning("%s again: exiting now", sig.name)
        self._kill()
        os._exit(EXIT_KILLED)
