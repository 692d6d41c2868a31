"""Per-trigger log lines, shipped to the API server in batches.

The buffer is bounded: when the server is slow or down it keeps the newest lines and counts what it dropped.
Each batch also tells the server how many lines were dropped since the last one. A client generated from an
API version without the logs endpoint (before 2026-12-01) ships nothing: the lines stay in the runner's own log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

from tocsin_client.errors import TocsinError
from tocsin_client.triggerer._backoff import backoff_delay
from tocsin_client.triggerer._frames import LogLine
from tocsin_client.triggerer._stats import Stats

__all__ = ["LogShipper"]

_log = logging.getLogger("tocsin.triggerer")
BATCH: Final = 1_000
INTERVAL_S: Final = 1.0

Send = Callable[[list[LogLine], int], Awaitable[None]]


class LogShipper:
    """Holds at most ``capacity`` lines and ships them with ``send`` every ``interval_s`` (or when a batch is full)."""

    def __init__(
        self, send: Send | None, stats: Stats, *, capacity: int = 10_000, interval_s: float = INTERVAL_S
    ) -> None:
        self._send = send
        self._stats = stats
        self._lines: deque[LogLine] = deque(maxlen=max(1, capacity))
        self._interval_s = interval_s
        self._full = asyncio.Event()
        self._failures = 0
        self._dropped = 0  # since the last shipped batch

    @property
    def enabled(self) -> bool:
        """Whether the server takes log lines."""
        return self._send is not None

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, lines: Iterable[LogLine], dropped_upstream: int = 0) -> None:
        """Buffer lines; the oldest give way when full."""
        self._drop(dropped_upstream)
        if self._send is None:
            return
        for line in lines:
            if len(self._lines) == self._lines.maxlen:
                self._drop(1)
            self._lines.append(line)
        if len(self._lines) >= BATCH:
            self._full.set()

    async def run(self) -> None:
        """Ship until cancelled."""
        while self._send is not None:
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._full.wait()
            except TimeoutError:
                pass
            self._full.clear()
            if not await self.flush():
                await asyncio.sleep(backoff_delay(self._failures, base_s=0.5, max_s=30.0))

    async def flush(self) -> bool:
        """Ship everything buffered now; False after a failed attempt (the lines stay)."""
        while self._lines and self._send is not None:
            batch = [self._lines.popleft() for _ in range(min(BATCH, len(self._lines)))]
            dropped, self._dropped = self._dropped, 0
            try:
                await self._send(batch, dropped)
            except TocsinError as exc:
                self._dropped += dropped
                if exc.transient:
                    self._failures += 1
                    self._put_back(batch)
                    return False
                self._drop(len(batch))
                _log.error("the server refused %d log lines: %s", len(batch), exc)
            else:
                self._failures = 0
                self._stats.log_lines_shipped += len(batch)
        return True

    def _put_back(self, batch: list[LogLine]) -> None:
        """Return an unsent batch to the front, keeping its newest lines when newer ones took the room."""
        room = (self._lines.maxlen or 0) - len(self._lines)
        keep = batch[len(batch) - room :] if room < len(batch) else batch
        self._drop(len(batch) - len(keep))
        self._lines.extendleft(reversed(keep))

    def _drop(self, count: int) -> None:
        self._stats.log_lines_dropped += count
        self._dropped += count
