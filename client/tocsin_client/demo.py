"""``tocsin demo``: defer N task instances on time triggers that fire together, watch them resume.

It uses only the public API: create a dag run and N task instances, move each to ``running``, defer each on a
``DateTimeTrigger`` for the same moment a few seconds out, then poll the admin task-instance list and show a
progress bar while the triggerer fires them and the server resumes them. The fire-to-resume latency of each task
is the time its ``scheduled`` state was first seen minus the moment (so it includes up to one poll interval).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO
from uuid import UUID

from tocsin_client import serde
from tocsin_client._client import AsyncClient
from tocsin_client.generated.models import (
    DagRunBody,
    DeferredStateUpdate,
    RunningStateUpdate,
    TaskInstanceBody,
    TaskInstanceStateName,
)

__all__ = ["DemoResult", "percentile", "run_demo"]

CONCURRENCY = 32
PAGE = 1000


@dataclass(frozen=True)
class DemoResult:
    """What the demo saw."""

    tasks: int
    resumed: int
    latencies_s: list[float]
    late_deferrals: int
    fire_at: datetime

    @property
    def ok(self) -> bool:
        """Every task resumed."""
        return self.resumed == self.tasks


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


async def _bounded(calls: list[object], limit: int = CONCURRENCY) -> list[object]:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: object) -> object:
        async with semaphore:
            return await call  # type: ignore[misc]

    return list(await asyncio.gather(*(one(call) for call in calls)))


def _bar(done: int, total: int, out: TextIO, width: int = 40) -> None:
    filled = int(width * done / total) if total else width
    out.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} resumed")
    out.flush()


async def run_demo(
    client: AsyncClient, tasks: int, *, delay_s: float = 5.0, timeout_s: float = 120.0, out: TextIO = sys.stderr
) -> DemoResult:
    """Run the demo against ``client`` (admin + worker scopes) and return what it saw."""
    dag_id = "tocsin_demo"
    run_id = f"demo__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%f')}"
    await client.create_dag_run(DagRunBody(dag_id=dag_id, run_id=run_id))
    out.write(f"dag run {dag_id}/{run_id}: creating {tasks} task instances\n")
    created = await _bounded(
        [
            client.create_task_instance(TaskInstanceBody(dag_id=dag_id, run_id=run_id, task_id=f"wait_{n:06d}"))
            for n in range(tasks)
        ]
    )
    ids: list[UUID] = [ti.id for ti in created]  # type: ignore[attr-defined]
    await _bounded([client.update_task_instance_state(ti_id, RunningStateUpdate()) for ti_id in ids])
    moment = datetime.now(UTC) + timedelta(seconds=delay_s)
    body = DeferredStateUpdate(
        classpath="tocsin_client.triggers.DateTimeTrigger",
        trigger_kwargs=serde.serialize({"moment": moment}),
        next_method="execute_complete",
    )
    await _bounded([client.update_task_instance_state(ti_id, body) for ti_id in ids])
    late = 0 if datetime.now(UTC) < moment else tasks
    out.write(f"deferred {tasks} tasks on triggers firing at {moment.isoformat(timespec='milliseconds')}\n")
    fire_at = time.time() + (moment - datetime.now(UTC)).total_seconds()
    seen: dict[UUID, float] = {}
    deadline = time.monotonic() + delay_s + timeout_s
    _bar(0, tasks, out)
    while len(seen) < tasks and time.monotonic() < deadline:
        offset = 0
        while True:
            page = await client.list_task_instances(
                dag_id=dag_id, run_id=run_id, state=TaskInstanceStateName.scheduled, limit=PAGE, offset=offset
            )
            now = time.time()
            for ti in page.task_instances:
                seen.setdefault(ti.id, now)
            offset += PAGE
            if offset >= page.total:
                break
        _bar(len(seen), tasks, out)
        if len(seen) < tasks:
            await asyncio.sleep(0.05 if time.time() >= fire_at - 0.5 else 0.25)
    out.write("\n")
    latencies = [max(0.0, at - fire_at) for at in seen.values()]
    return DemoResult(tasks=tasks, resumed=len(seen), latencies_s=latencies, late_deferrals=late, fire_at=moment)
