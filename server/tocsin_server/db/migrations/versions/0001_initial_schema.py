"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 18:59:52.948361
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tocsin_server.db.types import STORED_UUID, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connection",
        sa.Column("conn_id", sa.String(length=250), nullable=False),
        sa.Column("conn_type", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=500), nullable=True),
        sa.Column("schema", sa.String(length=500), nullable=True),
        sa.Column("login", sa.String(length=500), nullable=True),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("conn_id", name=op.f("pk_connection")),
    )
    op.create_table(
        "dag_run",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_run")),
        sa.UniqueConstraint("dag_id", "run_id", name="uq_dag_run_dag_id_run_id"),
    )
    op.create_table(
        "job",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_type", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("hostname", sa.String(length=253), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("start_date", UtcDateTime(), nullable=False),
        sa.Column("end_date", UtcDateTime(), nullable=True),
        sa.Column("latest_heartbeat", UtcDateTime(), nullable=False),
        sa.Column("assignment_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_state_heartbeat", ["state", "latest_heartbeat"], unique=False)

    op.create_table(
        "trigger_event",
        sa.Column("trigger_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("task_instances_resumed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("trigger_id", "event_id", name=op.f("pk_trigger_event")),
    )
    op.create_table(
        "variable",
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_variable")),
    )
    op.create_table(
        "xcom",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dag_id", "run_id", "task_id", "map_index", "key", name=op.f("pk_xcom")),
    )
    op.create_table(
        "trigger",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("classpath", sa.String(length=1000), nullable=False),
        sa.Column("kwargs", sa.Text(), nullable=False),
        sa.Column("created_date", UtcDateTime(), nullable=False),
        sa.Column(
            "triggerer_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["triggerer_id"],
            ["job.id"],
            name=op.f("fk_trigger_triggerer_id_job"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger")),
    )
    with op.batch_alter_table("trigger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trigger_triggerer_id"), ["triggerer_id"], unique=False)

    op.create_table(
        "asset_watcher",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("asset_name", sa.String(length=1000), nullable=False),
        sa.Column(
            "trigger_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["trigger.id"],
            name=op.f("fk_asset_watcher_trigger_id_trigger"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_watcher")),
    )
    with op.batch_alter_table("asset_watcher", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_watcher_trigger_id"), ["trigger_id"], unique=False)

    op.create_table(
        "task_instance",
        sa.Column("id", STORED_UUID, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "trigger_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("trigger_timeout", UtcDateTime(), nullable=True),
        sa.Column("next_method", sa.String(length=1000), nullable=True),
        sa.Column("next_kwargs", sa.Text(), nullable=True),
        sa.Column("start_from_trigger", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dag_id", "run_id"],
            ["dag_run.dag_id", "dag_run.run_id"],
            name="fk_task_instance_dag_run",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["trigger.id"],
            name=op.f("fk_task_instance_trigger_id_trigger"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_instance")),
        sa.UniqueConstraint("dag_id", "run_id", "task_id", "map_index", name="uq_task_instance_key"),
    )
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_instance_trigger_id"), ["trigger_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_task_instance_trigger_timeout"),
            ["trigger_timeout"],
            unique=False,
        )

    op.create_table(
        "asset_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("asset_name", sa.String(length=1000), nullable=False),
        sa.Column(
            "watcher_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("trigger_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["watcher_id"],
            ["asset_watcher.id"],
            name=op.f("fk_asset_event_watcher_id_asset_watcher"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_event")),
    )


def downgrade() -> None:
    op.drop_table("asset_event")
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_instance_trigger_timeout"))
        batch_op.drop_index(batch_op.f("ix_task_instance_trigger_id"))

    op.drop_table("task_instance")
    with op.batch_alter_table("asset_watcher", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_watcher_trigger_id"))

    op.drop_table("asset_watcher")
    with op.batch_alter_table("trigger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trigger_triggerer_id"))

    op.drop_table("trigger")
    op.drop_table("xcom")
    op.drop_table("variable")
    op.drop_table("trigger_event")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_state_heartbeat")

    op.drop_table("job")
    op.drop_table("dag_run")
    op.drop_table("connection")
