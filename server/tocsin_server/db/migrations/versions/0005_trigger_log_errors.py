"""trigger_log: a partial index of error lines per trigger, for the admin trigger list's last_error

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ERRORS = "level IN ('error', 'critical')"


def upgrade() -> None:
    op.create_index(
        "ix_trigger_log_trigger_errors",
        "trigger_log",
        ["trigger_id", "id"],
        unique=False,
        postgresql_where=sa.text(_ERRORS),
        sqlite_where=sa.text(_ERRORS),
    )


def downgrade() -> None:
    op.drop_index("ix_trigger_log_trigger_errors", table_name="trigger_log")
