"""Readiness: the database answers and its schema is at the latest migration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tocsin_server.db.diagnose import explain
from tocsin_server.db.migrate import head_revision
from tocsin_server.db.reads import GET_MIGRATION, Reads

if TYPE_CHECKING:
    from tocsin_server.db.diagnose import Target


class NotReadyError(Exception):
    """The server is not ready; the message says why and what to do."""


async def check(reads: Reads, *, dialect: str, target: Target) -> tuple[str, str]:
    try:
        row = await reads.fetch_one(GET_MIGRATION, {})
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"; explain() names it
        reason = explain(exc, target) or (
            f"the database cannot be read or has no migration table ({type(exc).__name__}): run `tocsin db upgrade`"
        )
        raise NotReadyError(reason) from None
    revision = None if row is None else str(row[0])
    head = head_revision()
    if revision != head:
        msg = f"the database schema is at {revision or 'no revision'}, not {head}: run `tocsin db upgrade`"
        raise NotReadyError(msg)
    return dialect, revision
