"""A thread that notices when the runner loop stops turning and names the trigger that holds it.

The loop calls ``pulse()`` every few tens of milliseconds. When a pulse is late by more than the threshold, the
watchdog samples the loop thread's stack (``sys._current_frames``), finds the trigger coroutine on it, and logs
the trigger id and where it blocks, once per episode; when the loop turns again the episode's length is logged.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType

__all__ = ["Block", "Watchdog"]

_log = logging.getLogger("tocsin.triggerer.watchdog")


@dataclass(slots=True)
class Block:
    """One episode of a blocked loop."""

    trigger_id: int | None
    where: str
    seconds: float = 0.0


def _find_trigger(frame: FrameType | None, code: CodeType) -> tuple[int | None, str]:
    """The trigger id of the host frame on the stack, and the innermost frames' location.

    The id is looked up first: when the loop is busy rather than stuck, the stack moves on while we read it.
    """
    trigger_id = None
    cursor = frame
    while cursor is not None:
        if cursor.f_code is code:
            found = getattr(cursor.f_locals.get("workload"), "trigger_id", None)
            trigger_id = found if isinstance(found, int) else None
            break
        cursor = cursor.f_back
    where = ""
    if frame is not None:
        summary = traceback.extract_stack(frame, limit=3)
        where = " <- ".join(f"{item.filename}:{item.lineno} in {item.name}" for item in reversed(summary))
    return trigger_id, where


class Watchdog:
    """Watches one loop thread.

    Args:
        loop_thread_id: ``threading.get_ident()`` of the loop thread.
        host_code: The code object of the coroutine that runs one trigger (``TriggerHost._run``).
        threshold_s: A pulse later than this is a block.
        on_block: Called from the watchdog thread when an episode ends, with its ``Block``.
    """

    def __init__(
        self,
        loop_thread_id: int,
        host_code: CodeType,
        *,
        threshold_s: float = 0.2,
        on_block: Callable[[Block], None] | None = None,
    ) -> None:
        self.on_block = on_block
        self._thread_id = loop_thread_id
        self._code = host_code
        self._threshold_s = threshold_s
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
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()

    def _watch(self) -> None:
        interval = min(0.1, self._threshold_s / 2)
        block: Block | None = None
        started = 0.0
        while not self._stop.wait(interval):
            silent = self.silent_s
            if block is None and silent > self._threshold_s:
                started = self._last_pulse
                block = self._sample()
                self.blocked_total += 1
                who = f"trigger {block.trigger_id}" if block.trigger_id is not None else "code outside any trigger"
                _log.warning("%s has blocked the event loop for %.2f s at %s", who, silent, block.where)
            elif block is not None and self._last_pulse > started:
                block.seconds = self._last_pulse - started
                who = f"trigger {block.trigger_id}" if block.trigger_id is not None else "code outside any trigger"
                _log.warning("%s blocked the event loop for %.2f s", who, block.seconds)
                if self.on_block is not None:
                    self.on_block(block)
                block = None

    def _sample(self) -> Block:
        frame = sys._current_frames().get(self._thread_id)
        trigger_id, where = _find_trigger(frame, self._code)
        return Block(trigger_id, where)
