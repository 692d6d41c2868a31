"""A trigger in a user's own module: the example of docs/triggers.md (tested by tests/triggerer/test_custom_trigger.py).

The triggerer imports this module by the classpath ``my_triggers.VariableTrigger``, so the folder holding it must
be on the triggerer's ``PYTHONPATH`` (or the module installed in its environment).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from tocsin_client import serde
from tocsin_client.triggers import BaseTrigger, TaskSkippedEvent, TriggerEvent


@serde.register  # encodable as {"__classname__": "my_triggers.Expected", ...}; decodable where allowed
@dataclasses.dataclass(frozen=True)
class Expected:
    """What the trigger waits for: variable ``key`` holding ``value``."""

    key: str
    value: str


class VariableTrigger(BaseTrigger):
    """Fires once variable ``expected.key`` holds ``expected.value``; ends the task as skipped on ``skip_value``."""

    def __init__(
        self, expected: Expected, poll_interval: timedelta = timedelta(seconds=1), skip_value: str | None = None
    ) -> None:
        self.expected = expected
        self.poll_interval = poll_interval
        self.skip_value = skip_value

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The classpath the triggerer imports, and the kwargs it rebuilds the trigger from: VariableTrigger(**kwargs).
        kwargs = {"expected": self.expected, "poll_interval": self.poll_interval, "skip_value": self.skip_value}
        return "my_triggers.VariableTrigger", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            # self.context is set by the runner: an API client with this task instance's token, and helpers.
            value = await self.context.get_variable(self.expected.key, default="")
            if value == self.expected.value:
                # The task resumes: next_kwargs["event"] holds this payload, serde-encoded.
                yield TriggerEvent({"key": self.expected.key, "value": value, "seen_at": datetime.now(UTC)})
                return
            if self.skip_value is not None and value == self.skip_value:
                yield TaskSkippedEvent()  # ends the task instance as skipped; it does not resume
                return
            await asyncio.sleep(self.poll_interval.total_seconds())

    async def cleanup(self) -> None:
        # Called after run() ends or is cancelled (the task timed out, the triggerer stops): release what run()
        # held here. This trigger holds nothing; the API client belongs to the runner.
        return
