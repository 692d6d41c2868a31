"""task-instance change log: every state change with a version in commit order (the watch feed's history)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tocsin_server.db.types import STORED_UUID, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_instance_change",
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("task_instance_id", STORED_UUID, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("previous_state", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_task_instance_change")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_task_instance_change_changed_at", "task_instance_change", ["changed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_task_instance_change_changed_at", table_name="task_instance_change")
    op.drop_table("task_instance_change")
