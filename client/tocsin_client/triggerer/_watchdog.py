"""A thread that notices when the runner loop stops turning, and names a trigger only for time in its own code.

The loop calls ``pulse()`` every few tens of milliseconds. Once a pulse is overdue, the watchdog samples the
loop thread's stack (``sys._current_frames``) every ``period_s`` and asks of each sample: is the loop inside a
trigger's own code — its ``run()`` generator or its ``cleanup()``, and what they call — or in the runner's
(bookkeeping, decoding kwargs, reporting, the garbage collector)? A trigger is credited the time between two
consecutive samples that both found it in its own code, less what the collector ran meanwhile. A trigger merely
on the stack when the runner held the loop (one taking its first step into ``asyncio.sleep``, one whose kwargs
are being decoded) is seen in one sample at most, and is credited nothing: an episode of a blocked loop names a
trigger only when that trigger's own code holds at least half the threshold of it. The others are logged as
blocked "outside any trigger's code", with where the loop was.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType

from tocsin_client.triggerer._heap import GcClock
from tocsin_client.triggerer._host import TriggerHost

__all__ = ["Block", "Watchdog", "trigger_in_own_code"]

_log = logging.getLogger("tocsin.triggerer.watchdog")
_RUN: CodeType = TriggerHost._run.__code__
_DRIVE: CodeType = TriggerHost._drive.__code__
_CLEANUP: CodeType = TriggerHost._cleanup.__code__
_HOST_CODES: frozenset[CodeType] = frozenset(
    value.__code__ for value in vars(TriggerHost).values() if hasattr(value, "__code__")
)


@dataclass(slots=True)
class Block:
    """One episode of a blocked loop; ``trigger_id`` is the trigger whose own code held it (``own_s`` of it)."""

    trigger_id: int | None
    where: str
    seconds: float = 0.0
    own_s: float = 0.0


def trigger_in_own_code(frame: FrameType | None) -> int | None:
    """The id of the trigger whose own code the stack is in, or None (the runner's code, or no trigger's).

    Own code: what the host's ``_drive`` resumes (the trigger's ``run()``) or ``_cleanup`` awaits (its
    ``cleanup()``), and everything they call; not ``_build`` (decoding the kwargs) nor ``_emit`` (encoding the
    event), which are the runner's work on the trigger's behalf.
    """
    callee = None
    cursor = frame
    own = False
    while cursor is not None:
        code = cursor.f_code
        if code is _DRIVE or code is _CLEANUP:
            own = callee is not None and callee.f_code not in _HOST_CODES
            if code is _CLEANUP and own and callee is not None:
                own = callee.f_code.co_name == "cleanup"  # not the asyncio.timeout around it
        elif code is _RUN:
            if not own:
                return None
            found = getattr(cursor.f_locals.get("workload"), "trigger_id", None)
            return found if isinstance(found, int) else None
        callee = cursor
        cursor = cursor.f_back
    return None


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return ""
    # No source lines: this runs every few milliseconds while the loop is overdue.
    summary = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=3, lookup_lines=False)
    return " <- ".join(f"{item.filename}:{item.lineno} in {item.name}" for item in summary)


@dataclass(slots=True)
class _Episode:
    """The samples of one overdue pulse."""

    since: float  # the last pulse before it
    own_s: dict[int, float] = field(default_factory=dict)
    wheres: dict[int | None, str] = field(default_factory=dict)  # the first place each owner was seen
    last_owner: int | None = None
    last_at: float = 0.0
    last_gc_s: float = 0.0
    reported: bool = False

    def sample(self, owner: int | None, at: float, gc_s: float, where: str) -> None:
        if owner is not None and owner == self.last_owner:
            credit = max(0.0, (at - self.last_at) - (gc_s - self.last_gc_s))
            self.own_s[owner] = self.own_s.get(owner, 0.0) + credit
        self.last_owner, self.last_at, self.last_gc_s = owner, at, gc_s
        self.wheres.setdefault(owner, where)

    def culprit(self, minimum_s: float) -> int | None:
        if not self.own_s:
            return None
        trigger_id, seconds = max(self.own_s.items(), key=lambda item: item[1])
        return trigger_id if seconds >= minimum_s and seconds > 0 else None

    def where(self, culprit: int | None) -> str:
        if culprit in self.wheres:
            return self.wheres[culprit]
        return self.wheres.get(None) or next(iter(self.wheres.values()), "")


class Watchdog:
    """Watches one loop thread.

    Args:
        loop_thread_id: ``threading.get_ident()`` of the loop thread.
        threshold_s: A pulse later than this is a block.
        on_block: Called from the watchdog thread when an episode ends, with its ``Block``.
        gc_clock: Counts the collector's time on the loop thread (installed by ``start``).
    """

    def __init__(
        self,
        loop_thread_id: int,
        *,
        threshold_s: float = 0.2,
        on_block: Callable[[Block], None] | None = None,
        gc_clock: GcClock | None = None,
    ) -> None:
        self.on_block = on_block
        self._thread_id = loop_thread_id
        self._threshold_s = threshold_s
        self._period_s = max(0.005, min(0.02, threshold_s / 8))
        self._gc = gc_clock or GcClock(loop_thread_id)
        self._last_pulse = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tocsin-watchdog", daemon=True)
        self.blocked_total = 0

    @property
    def silent_s(self) -> float:
        """Seconds since the last pulse."""
        return time.monotonic() - self._last_pulse

    def pulse(self) -> None:
        """Called by the loop: it is turning."""
        self._last_pulse = time.monotonic()

    def start(self) -> None:
        """Start watching."""
        self._gc.install()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._gc.remove()

    def _watch(self) -> None:
        episode: _Episode | None = None
        sample_after = self._threshold_s / 4  # a pulse this late may be a block starting: watch it closely
        while not self._stop.wait(self._period_s):
            last_pulse = self._last_pulse
            if episode is not None and last_pulse > episode.since:
                self._end(episode, last_pulse)
                episode = None
            silent = time.monotonic() - last_pulse
            if silent < sample_after:
                continue
            if episode is None:
                episode = _Episode(since=last_pulse)
            self._sample(episode)
            if not episode.reported and silent > self._threshold_s:
                episode.reported = True
                self.blocked_total += 1
                culprit = episode.culprit(self._threshold_s / 2)
                who = f"trigger {culprit}" if culprit is not None else "code outside any trigger's own"
                _log.warning("%s has blocked the event loop for %.2f s at %s", who, silent, episode.where(culprit))

    def _sample(self, episode: _Episode) -> None:
        frame = sys._current_frames().get(self._thread_id)
        owner = None if self._gc.running else trigger_in_own_code(frame)
        episode.sample(owner, time.monotonic(), self._gc.seconds(), _where(frame))
        del frame

    def _end(self, episode: _Episode, pulse: float) -> None:
        if not episode.reported:
            return
        culprit = episode.culprit(self._threshold_s / 2)
        own_s = episode.own_s.get(culprit, 0.0) if culprit is not None else 0.0
        block = Block(culprit, episode.where(culprit), pulse - episode.since, own_s)
        if culprit is None:
            _log.warning("the event loop was blocked for %.2f s outside any trigger's own code", block.seconds)
        else:
            _log.warning(
                "trigger %s blocked the event loop for %.2f s (%.2f s in its own code)", culprit, block.seconds, own_s
            )
        if self.on_block is not None:
            self.on_block(block)
