"""The UUID and time columns keep the stored form that databases already hold (tocsin_server/db/types.py).

Until 2026-12 these columns used advanced-alchemy's GUID and DateTimeUTC. A database they wrote must read and
write exactly the same with the types that replaced them: the same bytes, the same text, the same instants.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from tocsin_server.db import migrate
from tocsin_server.db import models as m

DUMP = Path(__file__).parents[1] / "fixtures" / "sqlite_0002_written_by_advanced_alchemy.sql"
OLD_TI = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff")
OLD_WHEN = datetime(2026, 11, 30, 12, 15, 16, 123456, tzinfo=UTC)  # written as 14:15:16.123456+02:00
PLUS2 = timezone(timedelta(hours=2))


def _orm(url: str, work: Any) -> Any:
    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _raw(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The driver's own view of the stored values, beneath every SQLAlchemy type."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split("///", 1)[1])
        try:
            rows = connection.execute(sql).fetchall()
            connection.commit()
            return rows
        finally:
            connection.close()

    async def run() -> list[tuple[Any, ...]]:
        pg = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            return [tuple(row) for row in await pg.fetch(sql)]
        finally:
            await pg.close()

    return asyncio.run(run())


def _new_task_instance(ti: uuid.UUID, when: datetime) -> m.TaskInstance:
    return m.TaskInstance(id=ti, dag_id="d", run_id="r", task_id=f"t-{ti.hex[:6]}", state="deferred", updated_at=when)


@pytest.fixture
def old_sqlite(tmp_path: Path) -> Iterator[str]:
    """The committed database that advanced-alchemy's types wrote, restored from its dump."""
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    connection.executescript(DUMP.read_text())
    connection.close()
    yield f"sqlite+aiosqlite:///{path}"


def test__a_database_written_by_advanced_alchemy_reads_the_same(old_sqlite: str) -> None:
    async def read(session: AsyncSession) -> tuple[m.TaskInstance | None, m.TriggerLog | None, m.Job | None]:
        ti = await session.get(m.TaskInstance, OLD_TI)
        log = await session.scalar(select(m.TriggerLog).where(m.TriggerLog.task_instance_id == OLD_TI))
        return ti, log, await session.get(m.Job, 1)

    ti, log, job = _orm(old_sqlite, read)
    assert ti is not None and log is not None and job is not None
    assert ti.id == OLD_TI and log.task_instance_id == OLD_TI
    assert ti.updated_at == OLD_WHEN and ti.updated_at.tzinfo is UTC
    assert ti.trigger_timeout == OLD_WHEN + timedelta(hours=1) and log.timestamp == OLD_WHEN
    assert job.end_date is None and job.latest_heartbeat == OLD_WHEN + timedelta(seconds=5)
    migrate.upgrade(old_sqlite)  # and it still migrates
    assert migrate.current(old_sqlite) == migrate.head_revision()


def test__new_rows_are_stored_exactly_as_the_old_ones(old_sqlite: str) -> None:
    new = uuid.UUID("a1b2c3d4-e5f6-4788-99aa-bbccddeeff00")

    async def write(session: AsyncSession) -> None:
        session.add(_new_task_instance(new, OLD_WHEN.astimezone(PLUS2)))
        await session.commit()

    _orm(old_sqlite, write)
    stored = _raw(old_sqlite, "SELECT id, typeof(id), updated_at, typeof(updated_at) FROM task_instance ORDER BY id")
    assert stored == [
        (OLD_TI.bytes, "blob", "2026-11-30 12:15:16.123456", "text"),
        (new.bytes, "blob", "2026-11-30 12:15:16.123456", "text"),
    ]


@pytest.mark.usefixtures("clean_database")
def test__uuids_and_times_round_trip_in_the_stored_form(database_url: str) -> None:
    ti = uuid.uuid4()
    _raw(
        database_url,
        "INSERT INTO dag_run (dag_id, run_id, state, created_at) VALUES ('d', 'r', 'running', CURRENT_TIMESTAMP)",
    )

    async def write_and_read(session: AsyncSession) -> m.TaskInstance | None:
        session.add(_new_task_instance(ti, OLD_WHEN.astimezone(PLUS2)))
        await session.commit()
        session.expunge_all()
        return await session.get(m.TaskInstance, ti)

    row = _orm(database_url, write_and_read)
    assert row is not None and row.id == ti
    assert row.updated_at == OLD_WHEN and row.updated_at.utcoffset() == timedelta(0)
    if database_url.startswith("sqlite"):
        expected = [(ti.bytes, "2026-11-30 12:15:16.123456")]
        assert _raw(database_url, "SELECT id, updated_at FROM task_instance") == expected
    else:
        kinds = "SELECT pg_typeof(id)::text, pg_typeof(updated_at)::text, id, updated_at FROM task_instance"
        assert _raw(database_url, kinds) == [("uuid", "timestamp with time zone", ti, OLD_WHEN)]


@pytest.mark.usefixtures("clean_database")
def test__a_naive_time_is_refused_not_guessed(database_url: str) -> None:
    async def write(session: AsyncSession) -> None:
        session.add(m.ServerDuty(name="cleanup", last_run=datetime(2026, 11, 30, 12, 0)))
        await session.commit()

    with pytest.raises(StatementError) as raised:
        _orm(database_url, write)
    assert isinstance(raised.value.orig, TypeError)
    assert _raw(database_url, "SELECT name FROM server_duty") == []


def test__an_autogenerated_migration_names_the_types_as_the_released_ones(tmp_path: Path) -> None:
    """A developer's ``alembic revision --autogenerate`` writes ``STORED_UUID``, never the private class."""
    scripts = tmp_path / "migrations"
    later_than_0001 = shutil.ignore_patterns("__pycache__", "000[2-9]_*", "00[1-9][0-9]_*")
    shutil.copytree(migrate.MIGRATIONS, scripts, ignore=later_than_0001)  # only 0001, whatever comes after it
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", f"sqlite+aiosqlite:///{tmp_path / 'at-0001.db'}")
    command.upgrade(config, "head")  # 0001: the models' trigger_log (a UUID and a time column) is missing
    command.revision(config, message="again", autogenerate=True, rev_id="9999")

    written = next((scripts / "versions").glob("9999_*.py")).read_text()
    assert "sa.Column('task_instance_id', STORED_UUID, nullable=True)" in written
    assert "sa.Column('timestamp', UtcDateTime(), nullable=False)" in written
    assert "alter_column('id'" not in written  # SQLite's NUMERIC(16) for BINARY(16) is no change to migrate
    assert "from tocsin_server.db.types import STORED_UUID" in written
    assert "from tocsin_server.db.types import UtcDateTime" in written
    assert "_Uuid16Bytes" not in written
