"""retention: indexes on the time columns the retention duty selects by

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trigger_event_received_at", "trigger_event", ["received_at"], unique=False)
    op.create_index("ix_asset_event_created_at", "asset_event", ["created_at"], unique=False)
    op.create_index("ix_trigger_log_timestamp", "trigger_log", ["timestamp"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_trigger_log_timestamp", table_name="trigger_log")
    op.drop_index("ix_asset_event_created_at", table_name="asset_event")
    op.drop_index("ix_trigger_event_received_at", table_name="trigger_event")
