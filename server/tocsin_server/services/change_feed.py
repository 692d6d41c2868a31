"""The watch feed (issue 10, item 2): pages of the change log, long polls, and endless streams with bookmarks.

Reads go through the hot-read path (single autocommit statements, no transaction held), so a watcher holds no
database connection while it waits. A read takes three statements, in this order, each for a reason:

1. the newest version: on PostgreSQL a version is visible only once every smaller one is (services/changes.py),
   so everything up to it is committed-visible to the next statement too;
2. the changes after ``after`` that match the filters, oldest first;
3. the retention horizon (the newest version deleted), last: if it is still below ``after`` now, nothing the
   second statement should have seen was deleted before it ran.

When the page is not full, the second statement saw every matching change up to at least the first one's
version, so the page's ``version`` moves on to it even past changes the filters left out: a filtered watcher
never scans them again, and never passes a version that was not yet visible.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from tocsin_server.errors import HistoryExpiredError
from tocsin_server.services.changes import Change
from tocsin_server.services.retention import HORIZON_ROW

if TYPE_CHECKING:
    from tocsin_server.db.reads import Reads
    from tocsin_server.services.change_notices import ChangeNotices

MAX_WAIT_S: Final = 30.0
"""A long poll waits at most this long (a longer ``wait`` is clamped, and the answer says so)."""
STREAM_BATCH: Final = 500
"""Changes a stream reads per statement; a full batch is read on at once."""

_COLUMNS: Final = (
    "version, task_instance_id, dag_id, run_id, task_id, map_index, try_number, previous_state, state, reason, "
    "changed_at"
)
_LATEST: Final = "SELECT max(version) FROM task_instance_change"
_OLDEST: Final = "SELECT min(version) FROM task_instance_change"
_HORIZON: Final = f"SELECT version FROM task_instance_change_horizon WHERE id = {HORIZON_ROW}"  # noqa: S608 - a constant
_FILTERS: Final = ("dag_id", "run_id", "state")


@dataclass(frozen=True, slots=True)
class Filters:
    dag_id: str | None = None
    run_id: str | None = None
    state: str | None = None

    def params(self) -> dict[str, str]:
        return {name: value for name in _FILTERS if (value := getattr(self, name)) is not None}


@dataclass(frozen=True, slots=True)
class Page:
    changes: list[Change]
    version: int
    """Where to read on from: the last version scanned (past changes the filters left out)."""
    full: bool
    """The page holds ``limit`` changes: more may follow at once."""


@dataclass(frozen=True, slots=True)
class Bookmark:
    version: int


def _select(filters: Mapping[str, str]) -> str:
    """The page query for these filters (one text per combination, so the read path caches each prepared)."""
    where = "".join(f" AND {name} = :{name}" for name in _FILTERS if name in filters)
    return (
        f"SELECT {_COLUMNS} FROM task_instance_change WHERE version > :after{where}"  # noqa: S608 - fixed names
        " ORDER BY version LIMIT :limit"
    )


def _uuid(stored: Any) -> uuid.UUID:
    """16 bytes on SQLite, a uuid on PostgreSQL (asyncpg's own type, which reads as text)."""
    return uuid.UUID(bytes=stored) if isinstance(stored, bytes) else uuid.UUID(str(stored))


def _time(stored: Any) -> datetime:
    """An aware datetime on PostgreSQL; on SQLite the naive UTC text ``DATETIME`` stores (db/types.py)."""
    value = stored if isinstance(stored, datetime) else datetime.fromisoformat(str(stored))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _change(row: Any) -> Change:
    return Change(
        version=int(row[0]),
        task_instance_id=_uuid(row[1]),
        dag_id=row[2],
        run_id=row[3],
        task_id=row[4],
        map_index=int(row[5]),
        try_number=int(row[6]),
        previous_state=row[7],
        state=row[8],
        reason=row[9],
        changed_at=_time(row[10]),
    )


async def _scalar(reads: Reads, sql: str) -> int | None:
    row = await reads.fetch_one(sql, {})
    return None if row is None or row[0] is None else int(row[0])


async def latest_version(reads: Reads) -> int:
    """The newest version committed (0 for an empty log): a watch without ``after`` starts after it."""
    return await _scalar(reads, _LATEST) or 0


async def oldest_version(reads: Reads) -> int | None:
    """The oldest version still kept (retention deletes older ones), or None for an empty log."""
    return await _scalar(reads, _OLDEST)


async def check_history(reads: Reads, after: int) -> None:
    """HistoryExpiredError when retention deleted a change newer than ``after``."""
    horizon = await _scalar(reads, _HORIZON)
    if horizon is not None and after < horizon:
        oldest = await oldest_version(reads)
        raise HistoryExpiredError(after, horizon + 1 if oldest is None else oldest)


async def read_page(reads: Reads, after: int, limit: int, filters: Filters) -> Page:
    """The changes after ``after`` matching ``filters``, at most ``limit``; HistoryExpiredError past retention."""
    latest = await latest_version(reads)
    params = filters.params()
    rows = await reads.fetch_all(_select(params), {**params, "after": after, "limit": limit})
    await check_history(reads, after)
    changes = [_change(row) for row in rows]
    if len(changes) >= limit:
        return Page(changes, changes[-1].version, full=True)
    return Page(changes, max(after, latest, changes[-1].version if changes else 0), full=False)


async def long_poll(
    reads: Reads, notices: ChangeNotices, after: int, limit: int, filters: Filters, wait_s: float
) -> Page:
    """A page at once when there are changes; else the first page a notice brings within ``wait_s``, or an empty
    one (whose version has moved past what the filters left out) when the wait ends."""
    deadline = time.monotonic() + wait_s
    while True:
        ticket = notices.ticket()  # before the read: a commit after it sets the ticket
        page = await read_page(reads, after, limit, filters)
        remaining = deadline - time.monotonic()
        if page.changes or remaining <= 0 or notices.closing:
            return page
        after = page.version
        await notices.wait(ticket, remaining)


async def stream(
    reads: Reads, notices: ChangeNotices, after: int, filters: Filters, bookmark_s: float
) -> AsyncIterator[Change | Bookmark]:
    """A bookmark at ``after``, then every change as it commits, and a bookmark after each ``bookmark_s`` without
    one; ends when the server closes (a watcher resumes from the last version it got)."""
    yield Bookmark(after)
    quiet_since = time.monotonic()
    while not notices.closing:
        ticket = notices.ticket()
        page = await read_page(reads, after, STREAM_BATCH, filters)
        for change in page.changes:
            yield change
        after = page.version
        now = time.monotonic()
        if page.changes:
            quiet_since = now
        if page.full:
            continue
        if now - quiet_since >= bookmark_s:
            yield Bookmark(after)
            quiet_since = now
            continue
        await notices.wait(ticket, bookmark_s - (now - quiet_since))
