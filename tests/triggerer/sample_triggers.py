"""Triggers that misbehave on purpose (and a few that behave), importable by runner processes."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tocsin_client.triggers import BaseTrigger, TaskSuccessEvent, TriggerEvent

_P = "tests.triggerer.sample_triggers"
log = logging.getLogger(__name__)


class _Simple(BaseTrigger):
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{_P}.{type(self).__name__}", self.kwargs


class FireNow(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent({"value": self.kwargs.get("value", 1)})


class Raising(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(0)
        raise ValueError("boom")
        yield TriggerEvent(None)  # pragma: no cover


class Silent(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        return
        yield TriggerEvent(None)  # pragma: no cover


class Never(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.Event().wait()
        yield TriggerEvent(None)  # pragma: no cover


class Blocking(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.kwargs.get("delay", 0.0))
        time.sleep(self.kwargs["seconds"])  # the bug under test: blocking the loop
        yield TriggerEvent("unblocked")


class Garbage(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(object())


class NotAnEvent(_Simple):
    async def run(self) -> AsyncIterator[Any]:
        yield 42


class NotAGenerator(_Simple):
    async def run(self) -> Any:  # type: ignore[override]
        return TriggerEvent(1)


class Watcher(_Simple):
    """An asset watcher's trigger: several events."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        for n in range(self.kwargs["count"]):
            await asyncio.sleep(0.01)
            yield TriggerEvent(n)


class Cleanup(_Simple):
    """Waits forever; writes a marker file on cleanup."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.Event().wait()
        yield TriggerEvent(None)  # pragma: no cover

    async def cleanup(self) -> None:
        Path(self.kwargs["marker"]).write_text("cleaned")


class Logging(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        log.info("hello from trigger")
        yield TriggerEvent("logged")


class LongLines(_Simple):
    """Logs a short line, a line of ``size`` characters, another short line, then fires."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        log.info("before the long line")
        log.info("%s", self.kwargs.get("char", "x") * self.kwargs["size"])
        log.info("after the long line")
        yield TriggerEvent("logged")


class LoggedRaise(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(0)
        raise LookupError("the thing is not there")
        yield TriggerEvent(None)  # pragma: no cover


class Terminal(_Simple):
    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TaskSuccessEvent()


class TerminalWithXComs(_Simple):
    """Ends its task in success and hands over its results as XComs, in the same event."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TaskSuccessEvent(xcoms=self.kwargs["xcoms"])


class Exit(_Simple):
    """Kills its runner process, once: the marker file says it already did."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        marker = Path(self.kwargs["marker"])
        if not marker.exists():
            marker.write_text("exited")
            os._exit(17)
        yield TriggerEvent("survived a runner restart")


class KillsRunner(_Simple):
    """Kills its runner process every time it starts."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.kwargs.get("delay", 0.0))
        os._exit(23)
        yield TriggerEvent(None)  # pragma: no cover


class NotATrigger:
    pass


class ReadsVariableLater(_Simple):
    """Sleeps, then reads a variable with its task-instance token (which may have expired meanwhile)."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.kwargs.get("delay", 0.0))
        yield TriggerEvent(await self.context.get_variable(self.kwargs["key"]))


class ReadsVariableUntil(_Simple):
    """Reads a variable every ``every`` seconds with its task-instance token until it holds ``"stop"``; fires with
    the number of reads. Its token is refreshed through the response header as it goes."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        reads = 0
        while True:
            reads += 1
            if await self.context.get_variable(self.kwargs["key"]) == "stop":
                yield TriggerEvent(reads)
                return
            await asyncio.sleep(self.kwargs.get("every", 0.1))


class Sleeper(_Simple):
    """Steps into ``asyncio.sleep`` over and over, and does nothing else."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            await asyncio.sleep(self.kwargs.get("pause", 0.01))
        yield TriggerEvent(None)  # pragma: no cover


class Spinner(_Simple):
    """Busy for ``seconds`` in its first step, then idle."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        until = time.perf_counter() + self.kwargs["seconds"]
        while time.perf_counter() < until:
            pass
        await asyncio.Event().wait()
        yield TriggerEvent(None)  # pragma: no cover
