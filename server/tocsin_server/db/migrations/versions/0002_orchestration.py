"""orchestration: claim index, assignment log, duties, watcher refusals, trigger logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tocsin_server.db.types import STORED_UUID, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("assignment_floor", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("log_lines_dropped", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("asset_watcher", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refused_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    op.create_index(
        "ix_trigger_unassigned",
        "trigger",
        ["id"],
        unique=False,
        postgresql_where=sa.text("triggerer_id IS NULL"),
        sqlite_where=sa.text("triggerer_id IS NULL"),
    )
    op.create_table(
        "trigger_assignment",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("trigger_id", sa.BigInteger(), nullable=False),
        sa.Column("added", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "version", "trigger_id", name=op.f("pk_trigger_assignment")),
    )
    op.create_table(
        "server_duty",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("last_run", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_duty")),
    )
    op.create_table(
        "trigger_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("trigger_id", sa.BigInteger(), nullable=False),
        sa.Column("task_instance_id", STORED_UUID, nullable=True),
        sa.Column("try_number", sa.Integer(), nullable=True),
        sa.Column("timestamp", UtcDateTime(), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_log")),
    )
    op.create_index(
        "ix_trigger_log_task_instance", "trigger_log", ["task_instance_id", "try_number", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_trigger_log_task_instance", table_name="trigger_log")
    op.drop_table("trigger_log")
    op.drop_table("server_duty")
    op.drop_table("trigger_assignment")
    op.drop_index("ix_trigger_unassigned", table_name="trigger")
    with op.batch_alter_table("asset_watcher", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("refused_count")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("log_lines_dropped")
        batch_op.drop_column("assignment_floor")
        batch_op.drop_column("held_count")
