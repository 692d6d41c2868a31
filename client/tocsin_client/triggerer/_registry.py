"""``Registry``: the one place that knows which triggers this triggerer holds and where each of them stands.

The server's word (``held``) and the triggerer's own state meet here, so the claim cycle, the runner pool and the
conflict and crash handling read and change one set of books instead of each keeping its own. A trigger id is in
at most one of these states:

- *pending*: held, its workload not fetched yet (the next claim cycle fetches and starts it);
- *placed*: sent to a runner (running, finished but still held, or being cancelled); ``stopped`` marks those
  cancelled on a 409, which count as handled so that a load listing them does not start them again;
- *parked*: a suspect of a runner crash, waiting for ``CrashGuard`` to give its group the turn;
- *quarantined*: killed its runner too often; never started again while held.

A placed, parked or quarantined trigger is *dispatched*. Placed triggers need not be held: after a lost lease
they keep running until the new job's first (full) load says whether it holds them.

Pure bookkeeping, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tocsin_client.generated.models import RunTrigger

__all__ = ["Registry"]


class Registry:
    """Every trigger id the triggerer knows of; see the module docstring.

    Args:
        runners: How many runner processes triggers are placed on (indices ``0 .. runners - 1``).
    """

    def __init__(self, runners: int) -> None:
        self._held: set[int] = set()
        self._pending: set[int] = set()
        self._placed: dict[int, int] = {}  # trigger id -> runner index
        self._by_runner: list[set[int]] = [set() for _ in range(runners)]
        self._stopped: set[int] = set()
        self._parked: dict[int, RunTrigger] = {}
        self._quarantined: set[int] = set()

    # -- what the server says ---------------------------------------------------------------------------------------

    def load_full(self, trigger_ids: Iterable[int]) -> set[int]:
        """A full load answer: the job holds exactly these. Returns the dispatched ids it no longer holds."""
        self._held = set(trigger_ids)
        dispatched = self.dispatched()
        self._pending = self._held - dispatched
        return dispatched - self._held

    def load_delta(self, added: Iterable[int], removed: Iterable[int]) -> set[int]:
        """A delta load answer. Returns the removed ids that are dispatched here (to cancel)."""
        removed = set(removed)
        self._held.difference_update(removed)
        self._pending.difference_update(removed)
        for trigger_id in added:
            self._held.add(trigger_id)
            if trigger_id not in self:
                self._pending.add(trigger_id)
        return {trigger_id for trigger_id in removed if trigger_id in self}

    def lease_ended(self) -> set[int]:
        """The job's lease ended: it holds nothing now. Returns the stopped ids (the new job may hold them; cancel
        them so that they can start again)."""
        self._held.clear()
        self._pending.clear()
        return set(self._stopped)

    @property
    def held(self) -> frozenset[int]:
        """The ids the server says this job holds."""
        return frozenset(self._held)

    @property
    def held_count(self) -> int:
        """How many triggers this job holds."""
        return len(self._held)

    # -- pending ----------------------------------------------------------------------------------------------------

    def pending(self) -> list[int]:
        """Held ids waiting for their workload, in id order."""
        return sorted(self._pending)

    @property
    def has_pending(self) -> bool:
        """Whether a claim cycle has workloads to fetch."""
        return bool(self._pending)

    def fetched(self, trigger_ids: Iterable[int]) -> None:
        """Their workloads were asked for: those in the answer are dispatched now, the others are no longer this
        job's (the next load says so)."""
        self._pending.difference_update(trigger_ids)

    def start_again(self, trigger_ids: Iterable[int]) -> bool:
        """Make the held ones of ``trigger_ids`` pending again (their runner died, or a stale 409 forgot them);
        True when any is."""
        again = set(trigger_ids) & self._held
        self._pending.update(again)
        return bool(again)

    # -- the runners --------------------------------------------------------------------------------------------------

    def placeable(self, trigger_id: int) -> bool:
        """Whether a workload for this id may start (it is neither placed nor quarantined)."""
        return trigger_id not in self._placed and trigger_id not in self._quarantined

    def lightest(self) -> int:
        """The runner holding the fewest triggers."""
        return min(range(len(self._by_runner)), key=lambda index: len(self._by_runner[index]))

    def place(self, trigger_id: int, runner: int) -> None:
        """The trigger was sent to ``runner``."""
        self._parked.pop(trigger_id, None)
        self._placed[trigger_id] = runner
        self._by_runner[runner].add(trigger_id)

    def runner_of(self, trigger_id: int) -> int | None:
        """The runner the trigger was placed on, if any."""
        return self._placed.get(trigger_id)

    def on_runner(self, runner: int) -> frozenset[int]:
        """The triggers placed on ``runner``."""
        return frozenset(self._by_runner[runner])

    def runner_lost(self, runner: int) -> set[int]:
        """``runner`` died and came back empty: forget what was placed on it. Returns those ids, the quarantined
        ones left out (they are not to start again)."""
        lost = self._by_runner[runner]
        self._by_runner[runner] = set()
        for trigger_id in lost:
            self._placed.pop(trigger_id, None)
            self._stopped.discard(trigger_id)
        return lost - self._quarantined

    def stop(self, trigger_id: int) -> int | None:
        """Mark a placed trigger as cancelled on a 409 but handled; returns its runner (None: not placed)."""
        runner = self._placed.get(trigger_id)
        if runner is not None:
            self._stopped.add(trigger_id)
        return runner

    def forget(self, trigger_ids: Iterable[int]) -> dict[int, list[int]]:
        """Drop every trace of these ids; returns the placed ones by runner (to cancel there)."""
        by_runner: dict[int, list[int]] = {}
        for trigger_id in trigger_ids:
            self._stopped.discard(trigger_id)
            self._parked.pop(trigger_id, None)
            self._quarantined.discard(trigger_id)
            runner = self._placed.pop(trigger_id, None)
            if runner is not None:
                self._by_runner[runner].discard(trigger_id)
                by_runner.setdefault(runner, []).append(trigger_id)
        return by_runner

    # -- crash suspects -----------------------------------------------------------------------------------------------

    def park(self, workload: RunTrigger) -> None:
        """A suspect waits for its turn to start."""
        self._parked[workload.trigger_id] = workload

    def unpark(self, trigger_ids: Iterable[int]) -> list[RunTrigger]:
        """The workloads of those parked ids whose turn came."""
        return [self._parked.pop(trigger_id) for trigger_id in trigger_ids if trigger_id in self._parked]

    @property
    def has_parked(self) -> bool:
        """Whether suspects wait for their turn."""
        return bool(self._parked)

    def quarantine(self, trigger_id: int) -> None:
        """Never start this trigger again while it is held."""
        self._quarantined.add(trigger_id)

    @property
    def quarantined(self) -> frozenset[int]:
        """Triggers that killed their runner too often."""
        return frozenset(self._quarantined)

    # -- views ------------------------------------------------------------------------------------------------------

    def __contains__(self, trigger_id: object) -> bool:
        """Whether the id is dispatched (placed, parked or quarantined)."""
        return trigger_id in self._placed or trigger_id in self._parked or trigger_id in self._quarantined

    def dispatched(self) -> set[int]:
        """The ids handed to the runners (placed, parked or quarantined)."""
        return set(self._placed) | set(self._parked) | self._quarantined

    def stopped(self) -> frozenset[int]:
        """The placed ids cancelled on a 409 and still counted as handled."""
        return frozenset(self._stopped)
