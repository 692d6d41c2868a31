"""A task instance's log line ids increase in commit order, so a reader following ``after=<last id>`` (``tocsin logs
--follow``) never skips a line that committed late. PostgreSQL takes ids from a sequence at insert time and commits
in any order; the shipping transactions of one task instance queue behind each other (an advisory lock), those of
other task instances do not. SQLite serializes every write transaction, so only PostgreSQL is tested here."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from msgspec import UNSET
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tocsin_server.config import Settings
from tocsin_server.db import models as m
from tocsin_server.db.engine import create_write_engine
from tocsin_server.db.transactions import create_sessionmaker
from tocsin_server.services import trigger_logs
from tocsin_server.services._time import utcnow

JOB = 7


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes every write transaction: ids follow commit order by construction")
    engine = create_write_engine(settings)
    factory = create_sessionmaker(engine)
    async with factory() as session, session.begin():
        now = utcnow()
        await session.execute(
            insert(m.Job).values(
                id=JOB, job_type="triggerer", state="running", hostname="h", pid=1, capacity=10,
                start_date=now, latest_heartbeat=now, assignment_version=0,
            )
        )  # fmt: skip
    yield factory
    await engine.dispose()


def _line(ti: uuid.UUID, event: str) -> SimpleNamespace:
    """A shipped line as the handler passes it (a raw TriggerLogLine: unset fields are UNSET)."""
    return SimpleNamespace(
        trigger_id=1, task_instance_id=str(ti), try_number=1, timestamp=utcnow(), level="info", event=event, extra=UNSET
    )


async def _ship(session: AsyncSession, ti: uuid.UUID, event: str) -> None:
    await trigger_logs.ship(session, JOB, [_line(ti, event)], 0, max_line_bytes=16384)


async def _waiting_on_a_lock(sessions: async_sessionmaker[AsyncSession], deadline_s: float = 10.0) -> int:
    """Poll until some backend of this database waits on an advisory lock; how many do."""
    deadline = time.monotonic() + deadline_s
    async with sessions() as probe:
        while time.monotonic() < deadline:
            waiting = await probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            )
            await probe.rollback()
            if waiting:
                return int(waiting)
            await asyncio.sleep(0.02)
    return 0


async def test__a_later_batch_of_the_same_task_instance_waits_and_gets_the_larger_ids(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ti, other = uuid.uuid4(), uuid.uuid4()
    first = sessions()
    await first.begin()
    await _ship(first, ti, "first")  # inserted, not committed: its id is taken

    async def later(event: str, task_instance: uuid.UUID) -> None:
        async with sessions() as session, session.begin():
            await _ship(session, task_instance, event)

    # Another task instance's batch does not wait for the open transaction.
    await asyncio.wait_for(later("other", other), timeout=10)
    second = asyncio.create_task(later("second", ti))
    assert await _waiting_on_a_lock(sessions) == 1, "the second batch of the task instance did not wait"
    assert not second.done()
    await first.commit()
    await first.close()
    await asyncio.wait_for(second, timeout=10)

    async with sessions() as session:
        rows = (await session.execute(select(m.TriggerLog.event, m.TriggerLog.id).order_by(m.TriggerLog.id))).all()
    order = [event for event, _ in rows]
    assert order.index("first") < order.index("second"), rows
