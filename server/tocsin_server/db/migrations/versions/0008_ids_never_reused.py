"""ids never reused on SQLite: AUTOINCREMENT on every table whose id names a row beyond its life

Without it SQLite gives a new row the id of the newest row deleted. The server's cleanup deletes a fired trigger;
the next trigger created got its id, and a triggerer still holding the first (its load answer said "removed 1,
added 1", or listed 1 again) took the new trigger for the one it had already run: the task never resumed. Jobs
(whose ids job tokens carry), dag runs, asset watchers, asset events and trigger log lines get the same rule.
PostgreSQL's sequences never go back: nothing changes there.

SQLite cannot add AUTOINCREMENT to a table in place: each table is copied into a new one (Alembic's batch mode).
Copying the rows seeds the table's sequence with its largest id; trigger and job ids deleted before this upgrade
may be remembered elsewhere (event records, assignment logs, log lines), so the sequence starts past those too.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from alembic import op
from tocsin_server.db.types import STORED_UUID

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES: Final = ("job", "dag_run", "trigger", "asset_watcher", "asset_event", "trigger_log")
"""Parents before children: each copy is made while the tables it refers to are already in place."""
REMEMBERED: Final = {
    "trigger": (
        ("trigger", "id"),
        ("trigger_event", "trigger_id"),
        ("trigger_assignment", "trigger_id"),
        ("trigger_log", "trigger_id"),
        ("asset_event", "trigger_id"),
    ),
    "job": (("job", "id"), ("trigger_event", "job_id"), ("trigger_assignment", "job_id"), ("trigger_log", "job_id")),
}
"""Where the ids of a table's rows may be named, deleted rows' too, as (table, column): its sequence starts past
them all (a job id a live token carries is recorded nowhere: job tokens live minutes, and an upgrade outlasts
them only if the newest job ended)."""
REFLECTED_AS: Final = {"trigger_log": (sa.Column("task_instance_id", STORED_UUID),)}
"""Columns whose type SQLite's reflection does not give back (``BINARY(16)`` reads as ``NUMERIC``)."""


def _rebuild(*, autoincrement: bool) -> None:
    # Copying a table drops the old one; with foreign keys enforced that would cascade (SET NULL, CASCADE) into
    # the rows that refer to it. The migration connection never turns them on; make sure nothing else did.
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        msg = "PRAGMA foreign_keys is on: this migration copies tables and must run with it off"
        raise RuntimeError(msg)
    for table in TABLES:
        with op.batch_alter_table(
            table,
            recreate="always",
            table_kwargs={"sqlite_autoincrement": autoincrement},
            reflect_args=REFLECTED_AS.get(table, ()),
        ):
            pass


def _start_sequence_past_remembered_ids() -> None:
    bind = op.get_bind()
    for table, columns in REMEMBERED.items():
        named = " UNION ALL ".join(
            f"SELECT max({column}) AS id FROM {source}"  # noqa: S608 - constants
            for source, column in columns
        )
        highest = bind.exec_driver_sql(f"SELECT max(id) FROM ({named})").scalar()  # noqa: S608 - constants
        if highest is None:
            continue
        # sqlite_sequence holds a row for the table once a row was inserted into it (the copy did, if it had any).
        values = {"highest": highest, "table": table}
        updated = bind.execute(
            sa.text("UPDATE sqlite_sequence SET seq = max(seq, :highest) WHERE name = :table"), values
        )
        if updated.rowcount == 0:
            bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:table, :highest)"), values)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=True)
        _start_sequence_past_remembered_ids()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=False)
