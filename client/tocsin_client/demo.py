"""``tocsin demo``: defer N task instances on time triggers that fire together, watch them resume.

It uses only the public API, as a workflow engine would: create a dag run and N task instances, move each to
``running``, defer each on a ``DateTimeTrigger`` for the same moment a few seconds out (``defer_task_instance``),
then watch the feed of task-instance changes (``watch_task_instances``) and show a progress bar while the
triggerer fires them and the server resumes them. The fire-to-resume latency of each task is the moment its
change into ``scheduled`` reached this client minus the trigger's fire moment. ``observe="poll"`` polls the admin
task-instance list every 50 ms instead (what engines did before the feed), and ``observe="both"`` does both at once
on the same fires (``polled_latencies_s``): benchmarks/watch_latency.py compares them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TextIO
from uuid import UUID

from tocsin_client._client import AsyncClient
from tocsin_client.generated.models import DagRunBody, RunningStateUpdate, TaskInstanceBody, TaskInstanceStateName
from tocsin_client.triggers import DateTimeTrigger

__all__ = ["DemoResult", "percentile", "run_demo"]

CONCURRENCY = 32
PAGE = 1000
POLL_INTERVAL_S = 0.05
Observe = Literal["watch", "poll", "both"]


@dataclass(frozen=True)
class DemoResult:
    """What the demo saw."""

    tasks: int
    resumed: int
    latencies_s: list[float]
    late_deferrals: int
    fire_at: datetime
    observed: Observe = "watch"
    polled_latencies_s: list[float] | None = None
    """With ``observe="both"``: the poller's latencies, beside the watch's in ``latencies_s``."""

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


class _Bar:
    """A progress bar on ``out``, redrawn at most every 0.1 s: drawing must not slow the watch it reports."""

    def __init__(self, total: int, out: TextIO, width: int = 40) -> None:
        self.total, self.out, self.width = total, out, width
        self.drawn_at = -math.inf

    def show(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and done < self.total and now - self.drawn_at < 0.1:
            return
        self.drawn_at = now
        filled = int(self.width * done / self.total) if self.total else self.width
        self.out.write(f"\r  [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} resumed")
        self.out.flush()


async def run_demo(
    client: AsyncClient,
    tasks: int,
    *,
    delay_s: float = 5.0,
    timeout_s: float = 120.0,
    out: TextIO = sys.stderr,
    observe: Observe = "watch",
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
    # Where the change feed stands before any deferral: the watch reads on from here, so it misses no resume.
    after = (await client.watch_task_instance_changes(limit=1)).version
    moment = datetime.now(UTC) + timedelta(seconds=delay_s)
    trigger = DateTimeTrigger(moment)
    await _bounded([client.defer_task_instance(ti_id, trigger) for ti_id in ids])
    late = 0 if datetime.now(UTC) < moment else tasks
    out.write(f"deferred {tasks} tasks on triggers firing at {moment.isoformat(timespec='milliseconds')}\n")
    deadline = time.monotonic() + (moment - datetime.now(UTC)).total_seconds() + timeout_s
    bar = _Bar(tasks, out)
    bar.show(0, force=True)
    polled: dict[UUID, float] | None = None
    if observe == "watch":
        seen = await _watched(client, run_id, after, tasks, deadline, bar)
    elif observe == "poll":
        seen = await _polled(client, dag_id, run_id, tasks, moment.timestamp(), deadline, bar)
    else:
        quiet = _Bar(tasks, io.StringIO())  # one bar: the watch's
        seen, polled = await asyncio.gather(
            _watched(client, run_id, after, tasks, deadline, bar),
            _polled(client, dag_id, run_id, tasks, moment.timestamp(), deadline, quiet),
        )
    bar.show(len(seen), force=True)
    out.write("\n")
    fired = moment.timestamp()
    return DemoResult(
        tasks=tasks,
        resumed=len(seen),
        latencies_s=[max(0.0, at - fired) for at in seen.values()],
        late_deferrals=late,
        fire_at=moment,
        observed=observe,
        polled_latencies_s=None if polled is None else [max(0.0, at - fired) for at in polled.values()],
    )


async def _watched(
    client: AsyncClient, run_id: str, after: int, tasks: int, deadline: float, bar: _Bar
) -> dict[UUID, float]:
    """When each task instance's change into ``scheduled`` reached this client (wall clock), from the feed."""
    seen: dict[UUID, float] = {}

    async def consume() -> None:
        changes = client.watch_task_instances(after=after, run_id=run_id, state=TaskInstanceStateName.scheduled)
        async with changes:
            async for change in changes:
                seen.setdefault(change.task_instance_id, time.time())
                bar.show(len(seen))
                if len(seen) >= tasks:
                    return

    with contextlib.suppress(TimeoutError):  # what was seen by the deadline is the result
        await asyncio.wait_for(consume(), max(0.0, deadline - time.monotonic()))
    return seen


async def _polled(
    client: AsyncClient, dag_id: str, run_id: str, tasks: int, fire_at: float, deadline: float, bar: _Bar
) -> dict[UUID, float]:
    """When each task instance was first listed ``scheduled`` by a poll of the admin list (every 50 ms near T)."""
    seen: dict[UUID, float] = {}
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
        bar.show(len(seen))
        if len(seen) < tasks:
            await asyncio.sleep(POLL_INTERVAL_S if time.time() >= fire_at - 0.5 else 0.25)
    return seen
