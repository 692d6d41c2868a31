"""A runner's loop keeps turning while tens of thousands of triggers start, are cancelled, or stop.

A real runner process is fed through the supervisor's ``RunnerPool``; its loop-lag probe (the 50 ms pulse, whose
latest lateness each tick reports) must stay under a bound through each burst. Before the work went in slices,
30,000 cancellations were one loop turn of seconds, and the collector's full collections grew with the heap.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from tocsin_client import serde
from tocsin_client.generated.models import RunTrigger, WorkloadTaskInstance
from tocsin_client.triggerer._pool import RunnerPool
from tocsin_client.triggerer._registry import Registry

from tests.triggerer.conftest import config, eventually

N = 30_000
# Sliced, the longest stall measured 20-90 ms on a loaded 2-core machine; unsliced, the same bursts stalled
# 0.5-0.7 s (start), 1.0-1.7 s (cancel) and 3.3-3.6 s (stop).
MAX_STALL_S = 0.25


def idle_workloads(n: int) -> list[RunTrigger]:
    moment = serde.serialize({"moment": datetime.now(UTC) + timedelta(days=30)})
    return [
        RunTrigger(
            trigger_id=i + 1,
            classpath="tocsin_client.triggers.DateTimeTrigger",
            kwargs=moment,
            timeout_at=None,
            task_instance=WorkloadTaskInstance(
                id=UUID(int=i + 1),
                dag_id="dag",
                run_id="run",
                task_id=f"t{i}",
                map_index=-1,
                try_number=1,
                next_method="execute_complete",
            ),
            token="t" * 300,
        )
        for i in range(n)
    ]


async def ticks_after(pool: RunnerPool, ticks: int) -> None:
    """Wait until the runner sent ``ticks`` more ticks (each carries the stalls since the one before)."""
    runner = pool._runners[0]
    seen, count = runner.last_tick, 0

    def ticked() -> bool:
        nonlocal seen, count
        if runner.last_tick > seen:
            seen, count = runner.last_tick, count + 1
        return count >= ticks

    await eventually(ticked, timeout_s=30, what=f"{ticks} ticks")


@pytest.fixture
async def pool() -> Any:
    registry = Registry(1)
    pool = RunnerPool(config(runners=1), registry, lambda report: None, lambda lost: None)
    await pool.start()
    yield pool
    pool.kill()
    await pool.stop(1.0)


async def test__starting_and_cancelling_many_triggers__never_stalls_the_runner_loop(pool: RunnerPool) -> None:
    workloads = idle_workloads(N)
    await ticks_after(pool, 2)
    pool.peak_lag_s(reset=True)
    assert pool.assign(workloads) == N
    del workloads
    await eventually(lambda: pool.running == N, timeout_s=120, what=f"{N} triggers running")
    await ticks_after(pool, 2)
    started_peak = pool.peak_lag_s(reset=True)
    assert started_peak < MAX_STALL_S, f"the loop stalled {started_peak:.2f} s while {N} triggers started"

    pool.cancel(range(1, N + 1))
    await eventually(lambda: pool.running == 0, timeout_s=120, what="every trigger cancelled")
    await ticks_after(pool, 2)
    cancelled_peak = pool.peak_lag_s(reset=True)
    assert cancelled_peak < MAX_STALL_S, f"the loop stalled {cancelled_peak:.2f} s while {N} triggers were cancelled"


async def test__stopping_a_runner_with_many_triggers__keeps_its_loop_turning(pool: RunnerPool) -> None:
    pool.assign(idle_workloads(N))
    await eventually(lambda: pool.running == N, timeout_s=120, what=f"{N} triggers running")
    await ticks_after(pool, 2)
    pool.peak_lag_s(reset=True)
    began = time.monotonic()
    await pool.stop(30.0)
    took = time.monotonic() - began
    # The ticks the runner sent while it cancelled everything carry its stalls.
    stopping_peak = pool.peak_lag_s()
    assert pool._runners[0].bye.is_set(), "the runner finished its shutdown"
    assert took < 30.0
    assert stopping_peak < MAX_STALL_S, f"the loop stalled {stopping_peak:.2f} s while {N} triggers stopped"
