"""The runner's heap and the cyclic garbage collector: keep idle triggers out of full collections, and time them.

Profiled with 100,000 triggers starting (docs/benchmarks.md, density section): the loop's long stalls were the
collector's full (generation 2) collections, each walking every object alive, about 25 per idle trigger; they
grew with N to 2.4 s at 100,000. An idle trigger's state lives as long as the trigger, and a trigger that ends
or is cancelled is freed by reference counting (the built-in path leaves no cycles), so ``HeapKeeper`` moves the
state of triggers just started into the permanent generation (``gc.freeze()``), which no collection walks.
Cycles that triggers' own code makes and leaves behind would stay there: once as many triggers ended as are
alive, the frozen objects are handed back to the collector (``gc.unfreeze()``), so the cost of one full
collection (made then and there) is spread over a whole population's lifetimes, as CPython's own rule for full
collections does.

``GcClock`` counts the seconds the collector runs on the loop's thread, so the watchdog can tell a loop the
collector held from one a trigger held.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any, Final

__all__ = ["GcClock", "HeapKeeper"]

_MIN_TURNOVER: Final = 10_000


class HeapKeeper:
    """Freezes the heap after triggers start; thaws it once a population's worth of triggers ended.

    ``ended`` is a running total of the triggers that ended or were cancelled (``TriggerHost.ended``).
    """

    def __init__(self, min_turnover: int = _MIN_TURNOVER) -> None:
        self._min_turnover = min_turnover
        self._ended_at_thaw = 0
        self.freezes = 0
        self.thaws = 0

    def settle(self, live: int, ended: int) -> None:
        """Triggers just started (``live`` run now): freeze what is alive, unless it is time to thaw."""
        if not self.check(live, ended):
            gc.freeze()
            self.freezes += 1

    def check(self, live: int, ended: int) -> bool:
        """Thaw if as many triggers ended since the last thaw as are alive (at least ``min_turnover``), and collect
        then and there: frozen again before a full collection came, their cycles would never be found."""
        if ended - self._ended_at_thaw < max(self._min_turnover, live) or gc.get_freeze_count() == 0:
            return False
        gc.unfreeze()
        gc.collect()
        self._ended_at_thaw = ended
        self.thaws += 1
        return True


class GcClock:
    """Seconds the cyclic collector ran on one thread, read from another (the watchdog's)."""

    def __init__(self, thread_id: int | None = None) -> None:
        self._thread_id = threading.get_ident() if thread_id is None else thread_id
        self._began = 0.0
        self.total_s = 0.0
        self.running = False

    def install(self) -> None:
        """Start counting."""
        gc.callbacks.append(self._on_gc)

    def remove(self) -> None:
        """Stop counting."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def seconds(self) -> float:
        """Collector seconds so far, a collection under way included."""
        total = self.total_s
        if self.running:
            total += time.perf_counter() - self._began
        return total

    def _on_gc(self, phase: str, _info: dict[str, Any]) -> None:
        if threading.get_ident() != self._thread_id:
            return
        if phase == "start":
            self._began = time.perf_counter()
            self.running = True
        else:
            self.total_s += time.perf_counter() - self._began
            self.running = False
