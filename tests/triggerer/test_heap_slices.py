"""The runner's helpers for bursts: ``Slicer`` keeps loop turns short, ``HeapKeeper`` keeps idle state out of full
collections yet collects after a population's worth of triggers ended, ``GcClock`` times the collector."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest
from tocsin_client.triggerer._heap import GcClock, HeapKeeper
from tocsin_client.triggerer._slices import Slicer


async def test__slicer__a_burst_of_slow_units_never_holds_the_loop_long() -> None:
    lateness: list[float] = []

    async def probe() -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.002)
            lateness.append(time.perf_counter() - began - 0.002)

    probing = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    slicer = Slicer(budget_s=0.01)
    slicer.begin()
    for _ in range(400):  # 0.4 s of work in units of 1 ms
        spin_until = time.perf_counter() + 0.001
        while time.perf_counter() < spin_until:
            pass
        await slicer.done_one()
    await slicer.pause()
    probing.cancel()
    assert slicer.slices >= 10
    # Unsliced this is one turn of 0.4 s; sliced, about 10 ms (a loaded machine adds its own delays).
    assert max(lateness) < 0.15, f"the loop waited {max(lateness):.3f} s"


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test__heap_keeper__freezes_after_starts_and_collects_after_a_turnover(thawed: None) -> None:
    keeper = HeapKeeper(min_turnover=100)
    keeper.settle(live=50, ended=0)
    assert gc.get_freeze_count() > 0
    Cycle()  # frozen, a cycle would outlive its trigger: only a thaw and a collection find it
    gc.freeze()
    assert not keeper.check(live=50, ended=99)
    assert gc.get_freeze_count() > 0
    assert keeper.check(live=50, ended=100)
    assert gc.get_freeze_count() == 0
    assert not any(isinstance(obj, Cycle) for obj in gc.get_objects())
    assert (keeper.freezes, keeper.thaws) == (1, 1)


def test__heap_keeper__a_live_population_larger_than_the_turnover_waits_for_as_many_ends(thawed: None) -> None:
    keeper = HeapKeeper(min_turnover=10)
    keeper.settle(live=1000, ended=0)
    assert not keeper.check(live=1000, ended=999)
    assert keeper.check(live=1000, ended=1000)


def test__gc_clock__counts_collections_on_its_thread_only() -> None:
    clock = GcClock()
    clock.install()
    try:
        gc.collect()
        counted = clock.seconds()
        assert counted > 0
        assert not clock.running
    finally:
        clock.remove()
    gc.collect()
    assert clock.seconds() == counted
