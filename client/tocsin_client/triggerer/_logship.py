"""Per-trigger log lines, shipped to the API server in batches.

The buffer is bounded: when the server is slow or down it keeps the newest lines and counts what it dropped.
Each batch also tells the server how many lines were dropped since the last one.

Lines travel whole (the server applies the line limit). A batch is sized so its body stays under the server's
default body limit; should a server with a smaller limit still answer 413, the batch is split in halves and a
single line that alone is too large is halved (marked), so one long line never costs the lines around it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import msgspec

from tocsin_client.errors import PayloadTooLargeError, TocsinError
from tocsin_client.triggerer._backoff import backoff_delay
from tocsin_client.triggerer._frames import LogLine
from tocsin_client.triggerer._stats import Stats

__all__ = ["LogShipper"]

_log = logging.getLogger("tocsin.triggerer")
BATCH: Final = 1_000
BATCH_BYTES: Final = 768 * 1024  # well under the server's default 1 MiB body limit, the line fields included
LINE_OVERHEAD: Final = 256  # the other fields of a line on the wire, JSON-encoded
SMALLEST_CUT: Final = 256  # a line this short that still gets 413 is dropped: no body limit is that small
_json: Final = msgspec.json.Encoder()
INTERVAL_S: Final = 1.0
MAX_CHARS: Final = 64_000_000  # text held at most: lines travel whole, so a few huge ones must not fill memory

Send = Callable[[list[LogLine], int], Awaitable[None]]


class LogShipper:
    """Holds at most ``capacity`` lines (``max_chars`` of text) and ships them with ``send`` every ``interval_s`` (or
    when a batch is full)."""

    def __init__(
        self,
        send: Send,
        stats: Stats,
        *,
        capacity: int = 10_000,
        interval_s: float = INTERVAL_S,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self._send = send
        self._stats = stats
        self._lines: deque[LogLine] = deque(maxlen=max(1, capacity))
        self._chars = 0
        self._max_chars = max_chars
        self._interval_s = interval_s
        self._full = asyncio.Event()
        self._failures = 0
        self._dropped = 0  # since the last shipped batch

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, lines: Iterable[LogLine], dropped_upstream: int = 0) -> None:
        """Buffer lines; the oldest give way when full."""
        self._drop(dropped_upstream)
        for line in lines:
            if len(self._lines) == self._lines.maxlen:
                self._evict()
            self._lines.append(line)
            self._chars += len(line.message)
        self._trim()
        if len(self._lines) >= BATCH:
            self._full.set()

    async def run(self) -> None:
        """Ship until cancelled."""
        while True:
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
        while self._lines:
            batch = self._take()
            dropped, self._dropped = self._dropped, 0
            unsent, unreported = await self._ship(batch, dropped)
            self._dropped += unreported
            if unsent:
                self._failures += 1
                self._put_back(unsent)
                return False
            self._failures = 0
        return True

    def _take(self) -> list[LogLine]:
        """The oldest lines, at most ``BATCH`` of them and about ``BATCH_BYTES`` on the wire (at least one)."""
        batch = [self._lines.popleft()]
        size = _wire_size(batch[0])
        while self._lines and len(batch) < BATCH:
            size += _wire_size(self._lines[0])
            if size > BATCH_BYTES:
                break
            batch.append(self._lines.popleft())
        self._chars -= sum(len(line.message) for line in batch)
        return batch

    async def _ship(self, batch: list[LogLine], dropped: int) -> tuple[list[LogLine], int]:
        """Send ``batch``, splitting it on 413; returns what a transient error left unsent and the dropped count
        not reported yet."""
        parts = [batch]
        while parts:
            part = parts.pop(0)
            try:
                await self._send(part, dropped)
            except PayloadTooLargeError:
                if len(part) > 1:
                    parts[:0] = [part[: len(part) // 2], part[len(part) // 2 :]]
                elif (smaller := _halve(part[0])) is not None:
                    parts.insert(0, [smaller])
                else:
                    self._drop(1)
                    _log.error("the server refused a log line of %d characters as too large", len(part[0].message))
            except TocsinError as exc:
                if exc.transient:
                    return [line for unsent in (part, *parts) for line in unsent], dropped
                self._drop(len(part))
                _log.error("the server refused %d log lines: %s", len(part), exc)
            else:
                self._stats.log_lines_shipped += len(part)
                dropped = 0
        return [], dropped

    def _put_back(self, batch: list[LogLine]) -> None:
        """Return an unsent batch to the front, keeping its newest lines when newer ones took the room."""
        room = (self._lines.maxlen or 0) - len(self._lines)
        keep = batch[len(batch) - room :] if room < len(batch) else batch
        self._drop(len(batch) - len(keep))
        self._lines.extendleft(reversed(keep))
        self._chars += sum(len(line.message) for line in keep)
        self._trim()

    def _evict(self) -> None:
        self._chars -= len(self._lines.popleft().message)
        self._drop(1)

    def _trim(self) -> None:
        """Drop the oldest lines while the text held is over ``max_chars`` (the newest line always stays)."""
        while self._chars > self._max_chars and len(self._lines) > 1:
            self._evict()

    def _drop(self, count: int) -> None:
        self._stats.log_lines_dropped += count
        self._dropped += count


def _wire_size(line: LogLine) -> int:
    return len(_json.encode(line.message)) + len(line.logger) + LINE_OVERHEAD


def _halve(line: LogLine) -> LogLine | None:
    """The line with half its message (marked), or None when it is too short to halve further."""
    if len(line.message) < SMALLEST_CUT:
        return None
    marker = f" ...[cut by the triggerer to fit the server's body limit: the line had {len(line.message)} characters]"
    return msgspec.structs.replace(line, message=line.message[: len(line.message) // 2] + marker)
