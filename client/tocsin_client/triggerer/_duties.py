"""``Duties``: the supervisor's named side tasks, watched together.

Modelled on procrastinate's worker (side tasks started by name, one monitor that stops the worker when any of them
fails, ``cancel_and_capture_errors`` on the way out) and Temporal's Python worker (wait for the first exception,
re-raise it, then shut the rest down in a set order): ``watch`` waits until the triggerer is asked to stop or a
duty ends, and raises what ended it; the caller then stops the duties one by one, in the order its shutdown needs
(``cancel``), and an error a duty raises while it is being stopped is logged rather than lost.

A duty never returns while the triggerer runs: one that does is a bug, reported like a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Duties", "DutyCrashedError", "LostLeaseError"]

_log = logging.getLogger("tocsin.triggerer")


class LostLeaseError(Exception):
    """The server answered 409 to a heartbeat or a load: the job's lease ended."""


class DutyCrashedError(Exception):
    """One or more duties ended by a bug (an exception other than ``LostLeaseError``, or a return)."""

    def __init__(self, crashes: list[tuple[str, BaseException]]) -> None:
        name, error = crashes[0]
        super().__init__(f"the {name} duty crashed: {error}")
        self.crashes = crashes


class Duties:
    """Side tasks by name, in the order they started."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._reported: set[asyncio.Task[Any]] = set()

    def start(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` as the duty ``name`` (a stopped duty of that name may start again)."""
        previous = self._tasks.get(name)
        if previous is not None and not previous.done():
            coroutine.close()
            msg = f"the {name} duty is running already"
            raise RuntimeError(msg)
        self._tasks[name] = asyncio.create_task(coroutine, name=name)

    async def watch(self, stop: asyncio.Event) -> None:
        """Return once ``stop`` is set; raise ``LostLeaseError`` or ``DutyCrashedError`` as soon as a duty ends instead."""
        waiter = asyncio.create_task(stop.wait(), name="tocsin-stop")
        try:
            done, _ = await asyncio.wait([*self._tasks.values(), waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
        crashes: list[tuple[str, BaseException]] = []
        lost: LostLeaseError | None = None
        for name, task in self._tasks.items():
            if task not in done:
                continue
            self._reported.add(task)
            error = None if task.cancelled() else task.exception()
            if isinstance(error, LostLeaseError):
                lost = error
            elif error is not None:
                crashes.append((name, error))
            elif not stop.is_set():
                crashes.append((name, RuntimeError("it returned while the triggerer was running")))
        if crashes:
            raise DutyCrashedError(crashes)
        if lost is not None and not stop.is_set():  # asked to stop as well: a graceful stop wins
            raise lost

    async def cancel(self, *names: str) -> None:
        """Stop these duties, one after the other, in the order given (unknown names are skipped)."""
        for name in names:
            task = self._tasks.pop(name, None)
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:  # noqa: BLE001 - any error of a duty being stopped is logged, not raised
                    if task not in self._reported:  # the error of a duty that failed as it was being stopped
                        _log.exception("the %s duty failed while stopping", name)
            self._reported.discard(task)

    async def cancel_all(self) -> None:
        """Stop every duty, newest first."""
        await self.cancel(*reversed(self._tasks))

    def names(self, prefix: str) -> list[str]:
        """The running duties whose names start with ``prefix``."""
        return [name for name in self._tasks if name.startswith(prefix)]
