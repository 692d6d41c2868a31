"""Migrations: the models and the migrations agree, and every migration goes down and up again."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from tocsin_server.db import migrate
from tocsin_server.db.models import Base
from tocsin_server.db.types import compare_type_in_migration


def _drift(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:

                def compare(sync: Connection) -> list[object]:
                    context = MigrationContext.configure(sync, opts={"compare_type": compare_type_in_migration})
                    return list(compare_metadata(context, Base.metadata))

                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.usefixtures("clean_database")
def test__models_match_the_migrations(database_url: str) -> None:
    assert _drift(database_url) == []


def test__downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    migrate.downgrade(database_url, "base")
    assert migrate.current(database_url) is None
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head_revision()


def test__on_sqlite_0008_makes_ids_never_come_back__past_those_remembered_elsewhere(tmp_path: Path) -> None:
    """Upgrading a database whose newest trigger and job were deleted (their ids still named by an event record
    and an assignment log entry): the next trigger and job get ids past every one named anywhere, and past
    deleted ones from then on; rows and indexes survive the copy."""
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url, "0007")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO job (id, job_type, state, hostname, pid, capacity, start_date, latest_heartbeat,"
            " assignment_version) VALUES (2, 't', 'running', 'h', 1, 10, '2026-01-01', '2026-01-01', 0)"
        )
        db.execute(
            "INSERT INTO trigger (id, classpath, kwargs, created_date, triggerer_id) VALUES (4, 'a', '{}', '2026-01-01', 2)"
        )
        db.execute("INSERT INTO trigger_assignment (job_id, version, trigger_id, added) VALUES (5, 1, 6, 1)")
        db.execute(
            "INSERT INTO trigger_event (trigger_id, event_id, job_id, received_at, task_instances_resumed)"
            " VALUES (9, 'e', 3, '2026-01-01', 1)"
        )
    migrate.upgrade(url)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        assert db.execute("SELECT id, triggerer_id FROM trigger").fetchall() == [(4, 2)]
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'trigger'")}
        assert "ix_trigger_unassigned" in indexes
        db.execute("INSERT INTO trigger (classpath, kwargs, created_date) VALUES ('b', '{}', '2026-01-02')")
        new_trigger = db.execute("SELECT max(id) FROM trigger").fetchone()[0]
        db.execute("DELETE FROM trigger WHERE id = ?", (new_trigger,))
        db.execute("INSERT INTO trigger (classpath, kwargs, created_date) VALUES ('c', '{}', '2026-01-03')")
        after_delete = db.execute("SELECT max(id) FROM trigger").fetchone()[0]
        db.execute(
            "INSERT INTO job (job_type, state, hostname, pid, capacity, start_date, latest_heartbeat,"
            " assignment_version) VALUES ('t', 'running', 'h', 1, 10, '2026-01-01', '2026-01-01', 0)"
        )
        new_job = db.execute("SELECT max(id) FROM job").fetchone()[0]
    assert (new_trigger, after_delete, new_job) == (10, 11, 6)
    migrate.downgrade(url, "0007")
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head_revision()


@pytest.mark.usefixtures("clean_database")
def test__every_table_the_models_give_sqlite_autoincrement__has_it_after_the_migrations(database_url: str) -> None:
    """``compare_metadata`` does not see ``sqlite_autoincrement``: a model that asks for it and a migration that
    forgot it would pass the drift test above."""
    if not database_url.startswith("sqlite"):
        pytest.skip("AUTOINCREMENT is SQLite's (PostgreSQL's sequences never go back)")
    wanted = {name for name, table in Base.metadata.tables.items() if table.dialect_options["sqlite"]["autoincrement"]}
    assert {"job", "trigger", "dag_run", "asset_watcher", "asset_event", "trigger_log"} <= wanted
    with contextlib.closing(sqlite3.connect(database_url.split("///", 1)[1])) as db:
        created = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    assert {name for name in wanted if "AUTOINCREMENT" not in created[name]} == set()
