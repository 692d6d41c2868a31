"""A runner's loop when N time triggers are due at one instant: when the first and last events are emitted, and
the longest loop stall in between, beside triggers that fire from a task of their own (the same run).

    .venv/bin/python benchmarks/triggerer_fire_burst.py [N ...]      (default: 10000 20000 50000)

One ``TriggerHost`` on a uvloop loop, as in a runner process, with a sink that stamps each event; a 1 ms pulse
task measures how long the loop went without turning. ``DateTimeTrigger`` waits on a loop timer and fires
without a task when it rings; the baseline is a subclass with its own ``run()`` (the same body), which the host
runs in a task from the start, as it does any trigger with code of its own: N tasks waking in one loop turn.
Between the two, the difference is what a time trigger's fire costs the loop. No server, no IPC: see
``triggerer_latency.py`` for the end to end.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import uvloop
from tocsin_client import AsyncClient, serde
from tocsin_client.generated.models import RunTrigger, WorkloadTaskInstance
from tocsin_client.triggerer._frames import EventOut, FailureOut
from tocsin_client.triggerer._host import TriggerHost
from tocsin_client.triggers import DateTimeTrigger, TriggerEvent

TIMER_PATH = "tocsin_client.triggers.DateTimeTrigger"
TASK_PATH = f"{__name__}.OwnRunDateTimeTrigger"
LEAD_S = 3.0  # starting 50,000 triggers takes a while; each must still be more than 1 s from its moment


class OwnRunDateTimeTrigger(DateTimeTrigger):
    """``DateTimeTrigger.run()`` as a trigger's own code: the host gives it a task from the start."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in super().run():
            yield event


class StampingSink:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.first = 0.0
        self.last = 0.0
        self.events = 0
        self.failures = 0
        self.done = asyncio.Event()

    def event(self, _event: EventOut) -> None:
        now = time.time()
        self.first = self.first or now
        self.last = now
        self.events += 1
        if self.events + self.failures >= self.expected:
            self.done.set()

    def failure(self, _failure: FailureOut) -> None:
        self.failures += 1
        if self.events + self.failures >= self.expected:
            self.done.set()

    def finished(self, _trigger_id: int) -> None:
        pass


async def burst(count: int, classpath: str) -> dict[str, float]:
    client = AsyncClient("http://tocsin.invalid")
    sink = StampingSink(count)
    host = TriggerHost(sink, lambda _id, token: client.with_token(token), allowed=("tocsin_client.*", "__main__.*"))
    moment = datetime.now(UTC) + timedelta(seconds=LEAD_S)
    kwargs = serde.serialize({"moment": moment})
    for trigger_id in range(count):
        ti = WorkloadTaskInstance(
            id=uuid4(), dag_id="dag", run_id="run", task_id="t", map_index=-1, try_number=1, next_method="resume"
        )
        host.start(
            RunTrigger(
                trigger_id=trigger_id,
                classpath=classpath,
                kwargs=kwargs,
                timeout_at=None,
                task_instance=ti,
                token="t" * 300,
            )
        )
    if host.waiting_on_timers not in (0, count):
        raise SystemExit(f"only {host.waiting_on_timers} of {count} on timers: raise LEAD_S")
    longest_stall = 0.0

    async def pulse() -> None:
        nonlocal longest_stall
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            if time.time() >= moment.timestamp() - 0.05:
                longest_stall = max(longest_stall, loop.time() - before - 0.001)

    pulsing = asyncio.create_task(pulse())
    await asyncio.wait_for(sink.done.wait(), timeout=LEAD_S + 120)
    pulsing.cancel()
    await host.stop(1.0)
    await client.aclose()
    at = moment.timestamp()
    return {
        "first_ms": (sink.first - at) * 1000,
        "last_ms": (sink.last - at) * 1000,
        "stall_ms": longest_stall * 1000,
        "failures": sink.failures,
    }


async def main(counts: list[int]) -> None:
    print(f"# time triggers due at one instant, one runner loop (uvloop), Python {sys.version.split()[0]}\n")
    print("| N | path | first event (ms after T) | last event | longest loop stall |")
    print("|---:|---|---:|---:|---:|")
    for count in counts:
        for name, classpath in (("timer, no task (DateTimeTrigger)", TIMER_PATH), ("baseline: own task", TASK_PATH)):
            figures: dict[str, Any] = await burst(count, classpath)
            if figures["failures"]:
                raise SystemExit(f"{figures['failures']} triggers failed")
            print(
                f"| {count:,} | {name} | {figures['first_ms']:.1f} | {figures['last_ms']:.1f} "
                f"| {figures['stall_ms']:.1f} |"
            )


if __name__ == "__main__":
    uvloop.run(main([int(arg) for arg in sys.argv[1:]] or [10_000, 20_000, 50_000]))
