"""The frames a supervisor and its runner processes exchange: msgspec msgpack behind a 4-byte length.

Supervisor → runner: ``Start`` (workloads), ``Cancel`` (trigger ids), ``Shutdown``.
Runner → supervisor: ``Hello`` once, ``Report`` (events, failures, finished ids, log lines; one frame per loop
iteration at most), ``Tick`` (loop progress, twice a second), ``Bye`` when a shutdown is done.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Final

import msgspec

from tocsin_client.generated.models import RunTrigger

__all__ = [
    "MAX_FRAME",
    "Bye",
    "Cancel",
    "EventOut",
    "FailureOut",
    "FrameError",
    "Hello",
    "Job",
    "LogLine",
    "Report",
    "Shutdown",
    "Start",
    "Tick",
    "ToRunner",
    "ToSupervisor",
    "TokenGrant",
    "TokenRequest",
    "encode",
    "read_frame",
]

MAX_FRAME: Final = 256 * 1024 * 1024
_LENGTH: Final = struct.Struct(">I")


class FrameError(Exception):
    """The peer sent something that is not a frame of the protocol."""


class Start(msgspec.Struct, tag="start"):
    """Run these triggers."""

    workloads: list[RunTrigger]


class Cancel(msgspec.Struct, tag="cancel"):
    """Stop these triggers (their cleanup still runs)."""

    trigger_ids: list[int]


class TokenGrant(msgspec.Struct, tag="token"):
    """A fresh task-instance token for a trigger (None: the job no longer holds it)."""

    trigger_id: int
    token: str | None


class Job(msgspec.Struct, tag="job"):
    """The job the triggerer runs as now (sent at spawn and on every new registration): the runner's log lines
    name it."""

    job_id: int


class Shutdown(msgspec.Struct, tag="shutdown"):
    """Cancel every trigger, report what is left, answer ``Bye`` and exit."""

    timeout_s: float = 5.0


class EventOut(msgspec.Struct, array_like=True):
    """A fired event; ``payload`` and the ``xcoms`` values are already serde-encoded, ``fired_at`` is wall-clock
    seconds. A terminal event's XComs travel in the event itself: the server applies them with the state change."""

    trigger_id: int
    event_id: str
    event_type: str
    payload: Any
    fired_at: float
    xcoms: dict[str, Any] | None = None


class FailureOut(msgspec.Struct, array_like=True):
    """A trigger that could not be built, raised, or ended without an event."""

    trigger_id: int
    error: str
    traceback: list[str]


class LogLine(msgspec.Struct, array_like=True):
    """One log record of a trigger, with the task instance it serves."""

    trigger_id: int
    task_instance_id: str | None
    try_number: int | None
    created: float
    level: str
    logger: str
    message: str


class Hello(msgspec.Struct, tag="hello"):
    """The runner is up."""

    pid: int


class Report(msgspec.Struct, tag="report"):
    """What happened since the last report."""

    events: list[EventOut] = []
    failures: list[FailureOut] = []
    finished: list[int] = []
    logs: list[LogLine] = []
    logs_dropped: int = 0


class Tick(msgspec.Struct, tag="tick"):
    """The loop is making progress; sent from the loop itself."""

    running: int
    lag_s: float
    blocked_total: int
    max_lag_s: float = 0.0  # the latest pulse since the last tick: the loop's longest stall, near enough


class TokenRequest(msgspec.Struct, tag="token_request"):
    """A trigger's token was refused as expired: ask for a fresh one."""

    trigger_id: int


class Bye(msgspec.Struct, tag="bye"):
    """The runner finished its shutdown."""


ToRunner = Start | Cancel | TokenGrant | Shutdown | Job
ToSupervisor = Hello | Report | Tick | TokenRequest | Bye

_encoder = msgspec.msgpack.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """One frame: the length, then the msgpack body."""
    body = _encoder.encode(message)
    if len(body) > MAX_FRAME:
        msg = f"a {type(message).__name__} frame of {len(body)} bytes is over the {MAX_FRAME} limit"
        raise FrameError(msg)
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader, decoder: msgspec.msgpack.Decoder[Any]) -> Any:
    """The next message, or None at a clean end of stream."""
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            msg = "the stream ended inside a frame header"
            raise FrameError(msg) from exc
        return None
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME:
        msg = f"a frame of {length} bytes is over the {MAX_FRAME} limit"
        raise FrameError(msg)
    try:
        body = await reader.readexactly(length)
        return decoder.decode(body)
    except asyncio.IncompleteReadError as exc:
        msg = "the stream ended inside a frame"
        raise FrameError(msg) from exc
    except msgspec.DecodeError as exc:
        msg = f"not a frame of the protocol: {exc}"
        raise FrameError(msg) from exc
