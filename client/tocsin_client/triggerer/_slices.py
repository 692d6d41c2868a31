"""``Slicer``: a burst of per-trigger work (100,000 starts, or cancels) cut into slices that let the loop turn.

Starting a trigger is cheap, but its first step (decode the kwargs, build the trigger, reach its first ``await``)
runs on the loop's next turn, all of a batch together: 500 of them, or 100,000 cancellations, make one turn of
hundreds of milliseconds to seconds, during which timers, ticks and events of every other trigger wait. A
``Slicer`` yields to the loop after each slice and sizes the next one from how long the last took, first steps
included (they run before the slicer's own task resumes), so that no turn takes much longer than ``budget_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

__all__ = ["SLICE_BUDGET_S", "Slicer"]

SLICE_BUDGET_S: Final = 0.01
_FIRST_SLICE: Final = 16
_MAX_SLICE: Final = 4096


class Slicer:
    """Call ``await slicer.done_one()`` after each unit of work; it yields to the loop at the end of each slice.

    Args:
        budget_s: The time one slice (its units and the loop turn that runs their first steps) should take.
        after_slice: Called after each slice, once the loop turned (the runner freezes the new triggers' state
            out of the garbage collector's reach there).
    """

    def __init__(self, budget_s: float = SLICE_BUDGET_S, after_slice: Callable[[], None] | None = None) -> None:
        self._budget_s = budget_s
        self._after_slice = after_slice
        self._size = _FIRST_SLICE
        self._count = 0
        self._began = time.perf_counter()
        self.slices = 0

    def begin(self) -> None:
        """A burst starts now (the time since the last slice was the loop's, not this work's)."""
        self._count = 0
        self._began = time.perf_counter()

    async def done_one(self) -> None:
        """One unit is done; at the end of a slice, let the loop turn."""
        self._count += 1
        if self._count >= self._size:
            await self.pause()

    async def pause(self) -> None:
        """End the slice now: the loop turns (the slice's tasks take their first steps), then the next begins."""
        if self._count == 0:
            return
        await asyncio.sleep(0)
        elapsed = time.perf_counter() - self._began
        # Grow at most 2x a slice (a cheap slice says little about the next), shrink at once to fit the budget.
        fitted = int(self._count * self._budget_s / elapsed) if elapsed > 0 else _MAX_SLICE
        self._size = max(1, min(_MAX_SLICE, 2 * self._size, fitted))
        self.slices += 1
        if self._after_slice is not None:
            self._after_slice()
        self.begin()
