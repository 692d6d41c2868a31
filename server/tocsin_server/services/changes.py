"""The task-instance change log: every state change, in commit order, for the watch feed (issue 10, item 1).

Each change is written in the transaction that makes it, so a change is logged if and only if it happened.
Its ``version`` must increase in *commit* order, else a reader could pass a version whose transaction had not
committed yet and never see it. On PostgreSQL a sequence value is taken when a row is inserted, not when its
transaction commits: two writers can commit in the other order than they drew their values. So the rows are
inserted last, just before COMMIT, under a transaction-scoped advisory lock that PostgreSQL releases only after
the commit is visible: the next writer draws its versions after ours are visible, and a reader that sees a
version sees every smaller one. Only the insert and the commit are serialized; the work before them is not.
SQLite needs no lock: its transactions here are ``BEGIN IMMEDIATE``, one writer at a time.

Changes are collected from the ORM (any flush that changes a task instance's ``state``), so no code path can
forget one; a bulk ``UPDATE`` statement bypasses the ORM and calls ``record`` with what it changed.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import event, inspect, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import TextClause

from tocsin_server.db import models as m
from tocsin_server.generated.models import TaskInstanceStateName as S
from tocsin_server.services._db import rows_insert, table_of
from tocsin_server.services._deferral import FAIL_METHOD
from tocsin_server.services._time import utcnow

__all__ = [
    "CHANNEL",
    "Change",
    "Reason",
    "reason_for",
    "record",
    "record_each",
    "track",
]

CHANGE_LOG_LOCK: Final = 0x746F6373696E_01  # "tocsin" + 1: the advisory lock key that orders commits of changes
_PENDING: Final = "tocsin.task_instance_changes"
_TRACKED: Final = "_tocsin_tracks_changes"
_WRITTEN: Final = "tocsin.task_instance_changes_written"
_ON_COMMIT: Final = "_tocsin_on_change_commit"
CHANNEL: Final = "tocsin_task_instance_changes"
"""The PostgreSQL NOTIFY channel of committed changes; the payload is the newest version."""
_NOTIFIED_INSERTS: dict[str, TextClause] = {}
_CHANGES: Final = table_of(m.TaskInstanceChange)
_ENDED: Final = frozenset({S.success.value, S.failed.value, S.skipped.value})


class Reason(enum.StrEnum):
    deferred = "deferred"
    resumed = "resumed"
    ended = "ended"
    trigger_failed = "trigger-failed"
    timed_out = "timed-out"
    changed = "changed"


# Read once: an enum member's value is a property, and these run for every logged row.
_DEFERRED: Final = S.deferred.value
_SCHEDULED: Final = S.scheduled.value
_REASONS: Final = {reason: reason.value for reason in Reason}


def reason_for(previous: str, state: str, next_method: str | None) -> Reason:
    if state == _DEFERRED:
        return Reason.deferred
    if previous == _DEFERRED and state == _SCHEDULED:
        return Reason.trigger_failed if next_method == FAIL_METHOD else Reason.resumed
    if previous == _DEFERRED and state in _ENDED:
        return Reason.ended
    return Reason.changed


@dataclass(frozen=True, slots=True)
class Change:
    version: int
    task_instance_id: uuid.UUID
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    previous_state: str
    state: str
    reason: str
    changed_at: datetime


def _row(ti: Any, previous: str, state: str, reason: Reason, now: datetime) -> dict[str, Any]:
    return {
        "task_instance_id": ti.id,
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
        "previous_state": previous,
        "state": state,
        "reason": _REASONS[reason],
        "changed_at": now,
    }


def _pending(session: Session) -> list[tuple[SessionTransaction | None, dict[str, Any]]]:
    pending: list[tuple[SessionTransaction | None, dict[str, Any]]] = session.info.setdefault(_PENDING, [])
    return pending


def record(session: AsyncSession, changed: Iterable[Any], *, previous: str, state: str, reason: Reason) -> None:
    """Log changes a bulk UPDATE made (rows with the task instance's key columns), in this transaction."""
    record_each(session, ((ti, previous, state, reason) for ti in changed))


def record_each(
    session: AsyncSession, changed: Iterable[tuple[Any, str, str, Reason]], *, now: datetime | None = None
) -> None:
    """Log changes a bulk UPDATE made, each ``(row with the key columns, previous, state, reason)``, in order."""
    now = now or utcnow()
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    _pending(sync).extend(
        (transaction, _row(ti, previous, state, reason, now)) for ti, previous, state, reason in changed
    )


def _collect(session: Session, _: Any) -> None:
    """After a flush (the history of what it wrote is still there): log every task instance whose state moved."""
    now = utcnow()
    transaction = session.get_nested_transaction() or session.get_transaction()
    for instance in session.dirty:
        if not isinstance(instance, m.TaskInstance):
            continue
        history = inspect(instance).attrs.state.history
        if not history.deleted or not history.added:
            continue
        previous, state = str(history.deleted[0]), str(history.added[0])
        if previous != state:
            reason = reason_for(previous, state, instance.next_method)
            _pending(session).append((transaction, _row(instance, previous, state, reason, now)))


def _inserting_and_notifying(insert: Executable) -> TextClause:
    """PostgreSQL: ``insert`` (the change log's recordset INSERT) and the ``pg_notify`` of the newest version it
    wrote, as one statement. The newest of its rows is the newest of the log: the ordering lock is held."""
    sql = str(cast("TextClause", insert).text)
    statement = _NOTIFIED_INSERTS.get(sql)
    if statement is None:
        statement = text(
            f"WITH written AS ({sql} RETURNING version)"  # noqa: S608 - the INSERT is built from the model
            " SELECT pg_notify(:channel, (SELECT max(version) FROM written)::text)"
        )
        _NOTIFIED_INSERTS[sql] = statement
    return statement


def _write(session: Session) -> None:
    """Just before COMMIT: take the ordering lock (PostgreSQL), then insert the versions. A savepoint's release
    writes nothing: its changes are written with the outer transaction's."""
    if session.in_nested_transaction():
        return
    session.flush()  # the last flush's changes are collected by _collect before they are written
    rows = [row for _, row in session.info.pop(_PENDING, [])]
    if not rows:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})
    statement, parameters = rows_insert(session.get_bind().dialect, _CHANGES, rows)  # Core: no per-row ORM work
    if postgres:
        # The notice is delivered at COMMIT to every listening server process (services/change_notices.py), none
        # if it fails. It goes in the insert's own statement: one round trip fewer on every change-logging write.
        session.execute(_inserting_and_notifying(statement), {**parameters, "channel": CHANNEL})
    else:
        session.execute(statement, parameters)
    session.info[_WRITTEN] = True


def _written(session: Session) -> None:
    """After COMMIT: wake this process's watchers (on SQLite the only wakeup; on PostgreSQL the quickest)."""
    if session.info.pop(_WRITTEN, False):
        callback: Callable[[], None] | None = getattr(type(session), _ON_COMMIT, None)
        if callback is not None:
            callback()


def _dropped(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


def _forget(session: Session, previous: SessionTransaction) -> None:
    """A rollback drops what its transaction (and the savepoints inside it) collected."""
    if not previous.nested:
        session.info.pop(_PENDING, None)
        return

    def inside(transaction: SessionTransaction | None) -> bool:
        while transaction is not None:
            if transaction is previous:
                return True
            transaction = transaction.parent
        return False

    kept = [(t, row) for t, row in _pending(session) if not inside(t)]
    session.info[_PENDING] = kept


def track(sessionmaker: async_sessionmaker[AsyncSession], on_commit: Callable[[], None] | None = None) -> None:
    """Log task-instance changes made through this sessionmaker's sessions (its own session class); ``on_commit``
    is called after each commit that logged one."""
    session_class: type[Session] = sessionmaker.kw["sync_session_class"]
    setattr(session_class, _ON_COMMIT, on_commit)
    # A mark on the class itself, not event.contains(): SQLAlchemy keys its registry by id(), and a new class can
    # get the id of one already collected, which would then look tracked when it is not.
    if session_class.__dict__.get(_TRACKED):
        return
    setattr(session_class, _TRACKED, True)
    event.listen(session_class, "after_flush", _collect)
    event.listen(session_class, "before_commit", _write)
    event.listen(session_class, "after_soft_rollback", _forget)
    event.listen(session_class, "after_commit", _written)
    event.listen(session_class, "after_rollback", _dropped)
