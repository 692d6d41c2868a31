"""task_instance_change_horizon: the newest change version retention deleted (the watch feed's 410 line)

Versions can have gaps (a transaction that drew one and then failed), so the oldest version kept does not say
whether anything before it was deleted; retention writes the newest version it deleted here instead.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_instance_change_horizon",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_instance_change_horizon")),
    )


def downgrade() -> None:
    op.drop_table("task_instance_change_horizon")
