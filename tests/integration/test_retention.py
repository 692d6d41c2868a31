"""Retention: old rows of each kind go, young ones and the ones still needed stay, in batches, once across replicas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tocsin_server.config import Settings
from tocsin_server.db import models as m
from tocsin_server.db.engine import create_write_engine
from tocsin_server.db.transactions import create_sessionmaker
from tocsin_server.services import jobs
from tocsin_server.services._time import utcnow
from tocsin_server.services.maintenance import run_retention
from tocsin_server.services.retention import sweep

WINDOW_S = 10 * 86400.0  # rows seeded 20 days ago are old, 1 day ago young


@pytest.fixture
def retention_settings(settings: Settings) -> Settings:
    return replace(
        settings,
        retention_events_s=WINDOW_S,
        retention_asset_events_s=WINDOW_S,
        retention_logs_s=WINDOW_S,
        retention_assignments_s=WINDOW_S,
        retention_changes_s=WINDOW_S,
    )


@pytest.fixture
async def sessions(retention_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_write_engine(retention_settings)
    yield create_sessionmaker(engine)
    await engine.dispose()


def _job(job_id: int, *, state: str, heartbeat: datetime) -> dict[str, object]:
    return {
        "id": job_id,
        "job_type": "triggerer",
        "state": state,
        "hostname": "h",
        "pid": 1,
        "capacity": 10,
        "start_date": heartbeat,
        "latest_heartbeat": heartbeat,
        "assignment_version": 3,
        "held_count": 0,
        "assignment_floor": 0,
        "log_lines_dropped": 0,
    }


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Per kind: old rows that must go, young rows that stay, and old rows still needed that stay."""
    now = utcnow()
    old, young = now - timedelta(days=20), now - timedelta(days=1)
    async with sessions() as session, session.begin():
        await session.execute(
            insert(m.Job),
            [
                _job(1, state=jobs.RUNNING, heartbeat=now),  # running: its assignment rows are needed
                _job(2, state="failed", heartbeat=old),  # stopped long ago: its rows go
                _job(3, state="failed", heartbeat=young),  # stopped recently: kept for the window
            ],
        )
        await session.execute(
            insert(m.Trigger),
            [
                {"id": 10, "classpath": "x.Deferred", "kwargs": "{}", "created_date": old},
                {"id": 11, "classpath": "x.Done", "kwargs": "{}", "created_date": old},
            ],
        )
        await session.execute(insert(m.DagRun).values(dag_id="d", run_id="r", state="running", created_at=old))
        await session.execute(
            insert(m.TaskInstance).values(
                id=uuid.uuid4(), dag_id="d", run_id="r", task_id="t", state="deferred", trigger_id=10, updated_at=old
            )
        )
        await session.execute(
            insert(m.TriggerEvent),
            [
                {"trigger_id": 10, "event_id": "needed", "received_at": old, "job_id": 1},  # trigger still deferred-on
                {"trigger_id": 11, "event_id": "old-done", "received_at": old, "job_id": 1},
                {"trigger_id": 99, "event_id": "old-gone", "received_at": old, "job_id": 1},  # trigger deleted
                {"trigger_id": 11, "event_id": "young", "received_at": young, "job_id": 1},
            ],
        )
        await session.execute(
            insert(m.AssetEvent),
            [
                {"asset_name": "a", "trigger_id": 11, "event_id": f"e{i}", "created_at": at}
                for i, at in enumerate([old, old, young])
            ],
        )
        await session.execute(
            insert(m.TriggerLog),
            [
                {"job_id": 1, "trigger_id": 11, "timestamp": at, "level": "info", "event": "line", "truncated": False}
                for at in (old, old, old, young)
            ],
        )
        await session.execute(
            insert(m.TriggerAssignment),
            [
                {"job_id": job_id, "version": version, "trigger_id": 11, "added": True}
                for job_id in (1, 2, 3, 4)  # job 4 is gone altogether
                for version in (1, 2)
            ],
        )
        change = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1, "reason": "deferred"}
        await session.execute(
            insert(m.TaskInstanceChange),
            [
                {
                    **change,
                    "task_instance_id": uuid.uuid4(),
                    "previous_state": "running",
                    "state": "deferred",
                    "changed_at": at,
                }
                for at in (old, old, young)
            ],
        )


async def _left(sessions: async_sessionmaker[AsyncSession]) -> dict[str, object]:
    async with sessions() as session:
        return {
            "events": sorted(await session.scalars(select(m.TriggerEvent.event_id))),
            "asset_events": sorted(await session.scalars(select(m.AssetEvent.event_id))),
            "logs": list(await session.scalars(select(func.count()).select_from(m.TriggerLog))),
            "assignments": sorted(set(await session.scalars(select(m.TriggerAssignment.job_id)))),
            "changes": list(await session.scalars(select(func.count()).select_from(m.TaskInstanceChange))),
        }


async def test_old_rows_go_young_and_needed_rows_stay(
    sessions: async_sessionmaker[AsyncSession], retention_settings: Settings
) -> None:
    await _seed(sessions)
    swept = await run_retention(sessions, retention_settings)
    assert swept is not None
    assert (swept.trigger_events, swept.asset_events, swept.trigger_logs, swept.assignments, swept.changes) == (
        2,
        2,
        3,
        4,
        2,
    )
    assert await _left(sessions) == {
        "events": ["needed", "young"],
        "asset_events": ["e2"],
        "logs": [1],
        "assignments": [1, 3],
        "changes": [1],
    }
    # Once per interval server-wide: a second replica (or round) within the interval does nothing.
    assert await run_retention(sessions, retention_settings) is None


async def test_deletes_in_batches(sessions: async_sessionmaker[AsyncSession], retention_settings: Settings) -> None:
    old = utcnow() - timedelta(days=20)
    async with sessions() as session, session.begin():
        await session.execute(
            insert(m.TriggerLog),
            [
                {"job_id": 1, "trigger_id": 1, "timestamp": old, "level": "info", "event": "x", "truncated": False}
                for _ in range(5)
            ],
        )
    swept = await sweep(sessions, replace(retention_settings, retention_batch_size=2))
    assert swept.trigger_logs == 5
    # Logs take 2 + 2 + 1; each of the four other (empty) kinds takes one batch that finds nothing.
    assert swept.batches == 3 + 4
    assert (await _left(sessions))["logs"] == [0]


async def test_two_replicas_sweeping_at_once_delete_each_row_once(
    sessions: async_sessionmaker[AsyncSession], retention_settings: Settings
) -> None:
    old = utcnow() - timedelta(days=20)
    rows = 2000
    async with sessions() as session, session.begin():
        await session.execute(
            insert(m.TriggerLog),
            [
                {"job_id": 1, "trigger_id": 1, "timestamp": old, "level": "info", "event": "x", "truncated": False}
                for _ in range(rows)
            ],
        )
    small_batches = replace(retention_settings, retention_batch_size=50)
    first, second = await asyncio.gather(sweep(sessions, small_batches), sweep(sessions, small_batches))
    assert first.trigger_logs + second.trigger_logs == rows
    # The sweeps overlapped (each got a share) unless one finished before the other began; either way nothing
    # is left and nothing was counted twice. A sweep stopped early by skipped rows leaves them to the next one.
    assert (await _left(sessions))["logs"] == [0]
