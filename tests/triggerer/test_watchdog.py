"""The watchdog names a trigger only for time spent in that trigger's own code.

In-process: a ``TriggerHost`` and a ``Watchdog`` on this test's loop, which pulses like the runner's. Each test
makes the loop block in one way and waits for the watchdog's verdict on that episode.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tocsin_client import AsyncClient, serde
from tocsin_client.triggerer import _host
from tocsin_client.triggerer._heap import GcClock
from tocsin_client.triggerer._host import TriggerHost
from tocsin_client.triggerer._watchdog import Block, Watchdog

from tests.triggerer.conftest import eventually
from tests.triggerer.sample_triggers import Sleeper
from tests.triggerer.test_host import ListSink, workload

P = "tests.triggerer.sample_triggers"
THRESHOLD_S = 0.2
BLOCK_S = 0.8


class Watched:
    def __init__(self, host: TriggerHost, sink: ListSink, watchdog: Watchdog) -> None:
        self.host, self.sink, self.watchdog = host, sink, watchdog
        self.blocks: list[Block] = []
        watchdog.on_block = self.blocks.append

    async def verdict(self) -> Block:
        """The first episode that lasted about as long as the block made in the test."""
        await eventually(lambda: any(b.seconds >= BLOCK_S * 0.8 for b in self.blocks), 15, "the block's verdict")
        return next(b for b in self.blocks if b.seconds >= BLOCK_S * 0.8)


def in_sleeper() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is Sleeper.run.__code__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.fixture
async def watched() -> AsyncIterator[Watched]:
    client = AsyncClient("http://tocsin.test")
    sink = ListSink()
    host = TriggerHost(sink, lambda _id, token: client.with_token(token), allowed=("tocsin_client.*", "tests.*"))
    watchdog = Watchdog(threading.get_ident(), threshold_s=THRESHOLD_S, gc_clock=GcClock())

    async def pulse() -> None:
        while True:
            await asyncio.sleep(0.05)
            watchdog.pulse()

    pulsing = asyncio.create_task(pulse())
    watchdog.start()
    try:
        yield Watched(host, sink, watchdog)
    finally:
        watchdog.stop()
        pulsing.cancel()
        await host.stop(1.0)
        await client.aclose()


async def test__trigger_blocking_in_its_own_code__is_named_with_its_time(watched: Watched) -> None:
    watched.host.start(workload(7, f"{P}.Blocking", {"seconds": BLOCK_S, "delay": 0.2}))
    block = await watched.verdict()
    assert block.trigger_id == 7
    assert block.own_s >= BLOCK_S / 2
    assert "sample_triggers.py" in block.where


async def test__trigger_in_asyncio_sleep_while_the_collector_holds_the_loop__is_not_named(
    watched: Watched,
) -> None:
    # A long collection that starts while the trigger steps into asyncio.sleep: the trigger is on the stack, the
    # time is the collector's.
    armed = threading.Event()
    loop_thread = threading.get_ident()

    def slow_collection(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start" and armed.is_set() and threading.get_ident() == loop_thread and in_sleeper():
            armed.clear()
            time.sleep(BLOCK_S)

    gc.callbacks.append(slow_collection)  # after the watchdog's clock: it knows a collection runs
    threshold = gc.get_threshold()
    try:
        watched.host.start(workload(8, f"{P}.Sleeper", {"pause": 0.01}))
        await asyncio.sleep(0.2)
        gc.set_threshold(1)  # the trigger's next allocation collects
        armed.set()
        block = await watched.verdict()
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(slow_collection)
    assert block.trigger_id is None, f"blamed trigger {block.trigger_id} for the collector's {block.seconds:.2f} s"


async def test__trigger_whose_kwargs_decode_slowly__is_not_named(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = serde.deserialize

    def slow_deserialize(*args: Any, **kwargs: Any) -> Any:
        time.sleep(BLOCK_S)  # the runner's decoding, on the trigger's behalf
        return real(*args, **kwargs)

    monkeypatch.setattr(_host.serde, "deserialize", slow_deserialize)
    watched.host.start(workload(9, f"{P}.Never", {}))
    block = await watched.verdict()
    assert block.trigger_id is None, f"blamed trigger {block.trigger_id} for the runner's decoding"


async def test__many_triggers_each_briefly_busy__none_is_named(watched: Watched) -> None:
    # 1,600 triggers taking their first step in one loop turn, 0.5 ms each: a long turn that is no one's fault.
    for trigger_id in range(100, 1700):
        watched.host.start(workload(trigger_id, f"{P}.Spinner", {"seconds": 0.0005}))
    block = await watched.verdict()
    assert block.trigger_id is None, f"blamed trigger {block.trigger_id} for a turn of 1,600 short steps"
