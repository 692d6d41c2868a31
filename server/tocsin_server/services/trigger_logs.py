"""Per-trigger log lines: shipped in batches by triggerers, kept per (task instance, try, job)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from msgspec import UNSET
from sqlalchemy import func, insert, select, text, update

from tocsin_server.db import models as m
from tocsin_server.errors import ForbiddenError
from tocsin_server.generated.models import StoredTriggerLogLine, TriggerLogList
from tocsin_server.services._json import raw_json

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def _cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` within ``limit`` UTF-8 bytes: a longer line keeps its start and ends with a marker saying so.

    This is the one place the line limit (``TOCSIN_MAX_LOG_LINE_BYTES``) applies; triggerers send lines whole.
    """
    encoded = text.encode()
    if len(encoded) <= limit:
        return text, False
    marker = f" ...[cut at TOCSIN_MAX_LOG_LINE_BYTES={limit}: the line had {len(encoded)} bytes]"
    room = max(0, limit - len(marker.encode()))
    return encoded[:room].decode(errors="ignore") + marker, True


async def _in_commit_order(session: AsyncSession, task_instance_ids: set[uuid.UUID]) -> None:
    """Make a task instance's line ids increase in commit order, so that a reader following ``id > cursor``
    never skips a line that commits late.

    On PostgreSQL ids come from a sequence when a row is inserted, and transactions commit in any order: a line
    with a smaller id could become visible after a reader moved past it. A transaction-scoped advisory lock per
    task instance (taken in one statement, in sorted order, so two batches never deadlock) serializes the
    batches that write lines of one task instance; batches of other task instances do not wait. SQLite already
    serializes every write transaction, ids included.
    """
    if not task_instance_ids or session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted(int.from_bytes(ti.bytes[:8], "big", signed=True) for ti in task_instance_ids)
    statement = text(
        "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS u(k, n) ORDER BY n"
    )
    await session.execute(statement, {"keys": keys})


async def ship(
    session: AsyncSession, job_id: int, lines: list[Any], dropped: int, *, max_line_bytes: int
) -> tuple[int, int]:
    """Store ``lines`` (raw TriggerLogLine structs) for ``job_id``; returns (stored, truncated)."""
    if await session.scalar(select(m.Job.id).where(m.Job.id == job_id)) is None:
        msg = f"the token names job {job_id}, which does not exist"
        raise ForbiddenError(msg, field="job_id")
    rows = []
    truncated = 0
    for line in lines:
        event, cut = _cut(line.event, max_line_bytes)
        extra = None if line.extra is UNSET else bytes(line.extra).decode()
        if extra is not None and len(extra) > max_line_bytes:
            extra, cut = None, True
        truncated += cut
        rows.append(
            {
                "job_id": job_id,
                "trigger_id": line.trigger_id,
                "task_instance_id": None
                if line.task_instance_id in (None, UNSET)
                else uuid.UUID(str(line.task_instance_id)),
                "try_number": None if line.try_number is UNSET else line.try_number,
                "timestamp": line.timestamp,
                "level": str(line.level.value if hasattr(line.level, "value") else line.level),
                "event": event,
                "extra": extra,
                "truncated": cut,
            }
        )
    if rows:
        await _in_commit_order(session, {row["task_instance_id"] for row in rows} - {None})
        await session.execute(insert(m.TriggerLog), rows)
    if dropped:
        await session.execute(
            update(m.Job).where(m.Job.id == job_id).values(log_lines_dropped=m.Job.log_lines_dropped + dropped)
        )
    return len(rows), truncated


async def read(
    session: AsyncSession,
    task_instance_id: uuid.UUID,
    try_number: int | None,
    *,
    after: int | None = None,
    limit: int,
    offset: int,
) -> TriggerLogList:
    """A page of a task instance's lines in id order; ``after`` is the cursor (the last id a reader saw)."""
    query = select(m.TriggerLog).where(m.TriggerLog.task_instance_id == task_instance_id)
    if try_number is not None:
        query = query.where(m.TriggerLog.try_number == try_number)
    if after is not None:
        query = query.where(m.TriggerLog.id > after)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(m.TriggerLog.id).limit(limit).offset(offset))
    return TriggerLogList(
        lines=[
            StoredTriggerLogLine(
                id=r.id,
                trigger_id=r.trigger_id,
                job_id=r.job_id,
                try_number=r.try_number,
                timestamp=r.timestamp,
                level=r.level,
                event=r.event,
                extra=None if r.extra is None else raw_json(r.extra),
                truncated=r.truncated,
            )
            for r in rows
        ],
        total=total or 0,
    )
