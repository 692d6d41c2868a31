"""``CrashGuard``: which trigger kills its runner process as it starts, and when to stop starting it.

A runner that dies takes every trigger it ran with it, and nothing in the dead process can say which one did it.
What the supervisor knows is *when* each trigger started: a trigger that has run for ``probation_s`` without its
runner dying is proven; the ones younger than that on the dying runner are the suspects.

- One suspect: the crash is its own. It starts again alone; after ``limit`` crashes it is quarantined (its task
  fails with a clear reason and it is not started again here).
- Several suspects (a batch started together): they are split in halves and started one half at a time, each
  half after the previous one survived its probation, until a crash has a single suspect (a bisection: a bad
  trigger among 1,000 is found in about ten crashes).
- Proven triggers start again at once: the other triggers keep running.

Pure bookkeeping, no I/O: the runner pool asks it what to do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["PROBATION_S", "QUARANTINE_AFTER", "CrashGuard", "Verdict"]

PROBATION_S: Final = 5.0
QUARANTINE_AFTER: Final = 3  # crashes attributed to one trigger before it is quarantined (README says 3)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one runner crash means."""

    suspects: frozenset[int]
    """The triggers that were starting on the runner (none: the crash was no starting trigger's)."""
    quarantined: dict[int, int] = field(default_factory=dict)
    """Trigger id → the crashes attributed to it, for those that reached the limit."""


class CrashGuard:
    """Tracks trigger starts and runner crashes; see the module docstring.

    Args:
        probation_s: How long a trigger must run before its runner's death is no longer blamed on it.
        limit: Crashes attributed to one trigger before it is quarantined.
    """

    def __init__(self, *, probation_s: float = PROBATION_S, limit: int = QUARANTINE_AFTER) -> None:
        self.probation_s = probation_s
        self.limit = limit
        self._started: dict[int, float] = {}  # triggers on probation → when they started
        self._proven: set[int] = set()
        self._crashes: dict[int, int] = {}
        self._groups: deque[list[int]] = deque()  # suspects waiting to start, one group at a time
        self._waiting: set[int] = set()
        self._trial_started: float | None = None

    def admit(self, trigger_id: int) -> bool:
        """Whether the trigger may start now (False: it waits for its group's turn)."""
        return trigger_id not in self._waiting

    def started(self, trigger_id: int, now: float) -> None:
        """The trigger was sent to a runner."""
        if trigger_id not in self._proven:
            self._started[trigger_id] = now

    def forget(self, trigger_id: int) -> None:
        """The trigger is gone (cancelled, not held any more)."""
        self._started.pop(trigger_id, None)
        self._proven.discard(trigger_id)
        self._crashes.pop(trigger_id, None)
        if trigger_id in self._waiting:
            self._waiting.discard(trigger_id)
            for group in self._groups:
                if trigger_id in group:
                    group.remove(trigger_id)
            while self._groups and not self._groups[0]:
                self._groups.popleft()

    def crashed(self, trigger_ids: Iterable[int], now: float) -> Verdict:
        """A runner holding ``trigger_ids`` died: blame, isolate, or quarantine."""
        suspects = set()
        for trigger_id in trigger_ids:
            started = self._started.pop(trigger_id, None)
            if started is None:
                continue
            if now - started >= self.probation_s:
                self._proven.add(trigger_id)
            else:
                suspects.add(trigger_id)
        self._trial_started = None
        quarantined: dict[int, int] = {}
        if len(suspects) == 1:
            [culprit] = suspects
            count = self._crashes[culprit] = self._crashes.get(culprit, 0) + 1
            if count >= self.limit:
                quarantined[culprit] = count
                self._crashes.pop(culprit)
            else:
                self._wait([[culprit]])
        elif suspects:
            ordered = sorted(suspects)
            half = len(ordered) // 2
            self._wait([ordered[:half], ordered[half:]])
        return Verdict(frozenset(suspects), quarantined)

    def release(self, now: float) -> list[int]:
        """The next group allowed to start, once the previous one survived its probation (else empty)."""
        if not self._groups:
            return []
        if self._trial_started is not None and now - self._trial_started < self.probation_s:
            return []
        group = self._groups.popleft()
        self._waiting.difference_update(group)
        self._trial_started = now
        return group

    @property
    def waiting(self) -> int:
        """Triggers waiting for their group's turn."""
        return len(self._waiting)

    def _wait(self, groups: list[list[int]]) -> None:
        self._groups.extendleft(reversed(groups))
        for group in groups:
            self._waiting.update(group)

    def tidy(self, now: float) -> None:
        """Move triggers that passed their probation to the proven set (bounds the bookkeeping)."""
        passed = [trigger_id for trigger_id, started in self._started.items() if now - started >= self.probation_s]
        for trigger_id in passed:
            del self._started[trigger_id]
            self._proven.add(trigger_id)
