"""ORM models of every table (DESIGN.md section 2). Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tocsin_server.db.types import STORED_UUID, UtcDateTime

# SQLite only autoincrements INTEGER PRIMARY KEY; BigInteger elsewhere.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")
NEVER_REUSED: Final[dict[str, Any]] = {"sqlite_autoincrement": True}
"""Table option for ids that name a row beyond its life (in tokens, a triggerer's held set, the API): without
AUTOINCREMENT, SQLite gives a new row the id of the newest one deleted. A triggerer still holding a trigger the
cleanup deleted then took the next trigger, given that trigger's id, for the one it had run, and never ran it.
PostgreSQL's sequences never go back."""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Job(Base):
    """A triggerer's liveness job."""

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_type: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(20))
    hostname: Mapped[str] = mapped_column(String(253))
    pid: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[datetime] = mapped_column(UtcDateTime())
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime())
    latest_heartbeat: Mapped[datetime] = mapped_column(UtcDateTime())
    # Bumped on every change of the set of triggers the job holds; the load delta protocol keys on it.
    assignment_version: Mapped[int] = mapped_column(BigInteger, default=0)
    # How many triggers the job holds, kept with every claim and release so `load` never counts them.
    held_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Changes up to this version were acknowledged by the client and pruned from trigger_assignment.
    assignment_floor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Log lines the triggerer reported it dropped (its buffer was full while the server was away).
    log_lines_dropped: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (Index("ix_job_state_heartbeat", "state", "latest_heartbeat"), NEVER_REUSED)


class Trigger(Base):
    """A trigger: what to run (classpath + serde kwargs) and which job holds it."""

    __tablename__ = "trigger"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    classpath: Mapped[str] = mapped_column(String(1000))
    kwargs: Mapped[str] = mapped_column(Text)
    created_date: Mapped[datetime] = mapped_column(UtcDateTime())
    triggerer_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"), index=True)

    # Claims look only at unassigned triggers: a partial index keeps that probe O(claimed), never O(all triggers).
    __table_args__ = (
        Index(
            "ix_trigger_unassigned",
            "id",
            postgresql_where=text("triggerer_id IS NULL"),
            sqlite_where=text("triggerer_id IS NULL"),
        ),
        NEVER_REUSED,
    )


class TriggerAssignment(Base):
    """One change of a live job's held set: the log the ``load`` delta form is answered from."""

    __tablename__ = "trigger_assignment"

    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trigger_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    added: Mapped[bool] = mapped_column(Boolean)


class DagRun(Base):
    """A run of a dag; task instances belong to one."""

    __tablename__ = "dag_run"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("dag_id", "run_id", name="uq_dag_run_dag_id_run_id"), NEVER_REUSED)


class TaskInstance(Base):
    """A task instance, with its deferral while it waits on a trigger."""

    __tablename__ = "task_instance"

    id: Mapped[uuid.UUID] = mapped_column(STORED_UUID, primary_key=True, default=uuid.uuid4)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    try_number: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(20))
    trigger_id: Mapped[int | None] = mapped_column(ForeignKey("trigger.id", ondelete="SET NULL"), index=True)
    trigger_timeout: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    next_method: Mapped[str | None] = mapped_column(String(1000))
    # JSON text exactly as stored: an event's payload is spliced in without ever being decoded.
    next_kwargs: Mapped[str | None] = mapped_column(Text)
    start_from_trigger: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("dag_id", "run_id", "task_id", "map_index", name="uq_task_instance_key"),
        ForeignKeyConstraint(
            ["dag_id", "run_id"],
            ["dag_run.dag_id", "dag_run.run_id"],
            ondelete="CASCADE",
            name="fk_task_instance_dag_run",
        ),
    )


class Connection(Base):
    """A connection to an external system."""

    __tablename__ = "connection"

    conn_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    conn_type: Mapped[str] = mapped_column(String(100))
    host: Mapped[str | None] = mapped_column(String(500))
    schema: Mapped[str | None] = mapped_column(String(500))
    login: Mapped[str | None] = mapped_column(String(500))
    password: Mapped[str | None] = mapped_column(Text)
    port: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[str | None] = mapped_column(Text)


class Variable(Base):
    """A key/value variable."""

    __tablename__ = "variable"

    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)


class XCom(Base):
    """A JSON value a task instance pushed under a key."""

    __tablename__ = "xcom"

    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    map_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    # JSON text as received: a hot read returns it without re-encoding.
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AssetWatcher(Base):
    """A trigger that feeds an asset."""

    __tablename__ = "asset_watcher"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    asset_name: Mapped[str] = mapped_column(String(1000))
    trigger_id: Mapped[int] = mapped_column(ForeignKey("trigger.id", ondelete="CASCADE"), index=True)
    # Events whose payload named a class outside the allowlist (or did not decode): counted, never applied.
    refused_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = NEVER_REUSED


class AssetEvent(Base):
    """What a fired event produced for an asset watcher."""

    __tablename__ = "asset_event"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    asset_name: Mapped[str] = mapped_column(String(1000))
    watcher_id: Mapped[int | None] = mapped_column(ForeignKey("asset_watcher.id", ondelete="SET NULL"))
    trigger_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    # The retention duty selects old rows by age (migration 0004).
    __table_args__ = (Index("ix_asset_event_created_at", "created_at"), NEVER_REUSED)


class TriggerEvent(Base):
    """An event received from a triggerer; makes event submission idempotent."""

    __tablename__ = "trigger_event"

    trigger_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    task_instances_resumed: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_trigger_event_received_at", "received_at"),)


class ServerDuty(Base):
    """When a server-wide periodic duty last ran; one conditional UPDATE elects the replica that runs it."""

    __tablename__ = "server_duty"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    last_run: Mapped[datetime] = mapped_column(UtcDateTime())


class TriggerLog(Base):
    """A log line a trigger wrote, kept per (task instance, try, job) after the triggerer is gone."""

    __tablename__ = "trigger_log"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigInteger)
    trigger_id: Mapped[int] = mapped_column(BigInteger)
    task_instance_id: Mapped[uuid.UUID | None] = mapped_column(STORED_UUID)
    try_number: Mapped[int | None] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime())
    level: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(Text)
    # JSON text of the line's other fields, as received.
    extra: Mapped[str | None] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)

    # The admin trigger list shows each trigger's newest error line: a partial index holds only those lines.
    __table_args__ = (
        Index("ix_trigger_log_task_instance", "task_instance_id", "try_number", "id"),
        Index("ix_trigger_log_timestamp", "timestamp"),
        Index(
            "ix_trigger_log_trigger_errors",
            "trigger_id",
            "id",
            postgresql_where=text("level IN ('error', 'critical')"),
            sqlite_where=text("level IN ('error', 'critical')"),
        ),
        NEVER_REUSED,
    )


class TaskInstanceChange(Base):
    """One task-instance state change, written in the same transaction as the change. ``version`` increases in
    commit order (see services/changes.py for how that holds on PostgreSQL), so a reader that resumes after a
    version sees every later change exactly once. AUTOINCREMENT on SQLite: a version is never reused, even
    after retention deleted the newest rows."""

    __tablename__ = "task_instance_change"

    version: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    task_instance_id: Mapped[uuid.UUID] = mapped_column(STORED_UUID)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer)
    try_number: Mapped[int] = mapped_column(Integer)
    previous_state: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(20))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_task_instance_change_changed_at", "changed_at"), {"sqlite_autoincrement": True})


class TaskInstanceChangeHorizon(Base):
    """One row (``id`` 1), once retention has deleted changes: the newest version it deleted. A watch resuming
    after an older version has lost changes (410); versions have gaps, so the oldest version kept cannot say it."""

    __tablename__ = "task_instance_change_horizon"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
