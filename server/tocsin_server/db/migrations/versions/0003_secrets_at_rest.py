"""secrets at rest: encrypt existing connection passwords and extras, variable values and trigger kwargs

With keys configured (``TOCSIN_TRIGGER_KWARGS_KEYS``, read the way the server reads its settings), every plain
value is encrypted with the first key; without keys nothing changes. No column changes type: they are all Text.
Downgrading decrypts connection and variable values (the previous release reads them in clear); trigger kwargs
stay as they are, since that release already decrypts them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:45:00
"""

from __future__ import annotations

from alembic import context, op
from tocsin_server.config import load_settings
from tocsin_server.db.cipher import PREFIX, KwargsCipher
from tocsin_server.db.secrets_at_rest import CONNECTION_AND_VARIABLE_COLUMNS, rewrite

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _cipher() -> KwargsCipher:
    url = context.config.get_main_option("sqlalchemy.url")
    settings = load_settings(require_secret=False, database_url=url or None)
    return KwargsCipher(settings.trigger_kwargs_keys)


def upgrade() -> None:
    cipher = _cipher()
    if not cipher.encrypts:
        return
    rewrite(op.get_bind(), lambda stored: stored if stored.startswith(PREFIX) else cipher.seal(stored))


def downgrade() -> None:
    cipher = _cipher()
    if not cipher.encrypts:
        return
    rewrite(op.get_bind(), cipher.open, columns=CONNECTION_AND_VARIABLE_COLUMNS)
