"""Deferred task instances leaving their deferral, set-based: one SELECT … FOR UPDATE, one UPDATE per batch.

An event batch can move thousands of task instances. Loading each as an ORM object and flushing it row by row
cost most of a bulk request's server time (issue 11, item 6: object loading, the unit of work's per-row UPDATEs,
attribute history for the change log, and the garbage collector walking all of those objects). Here the rows are
read with Core into small slotted objects, the UPDATE carries every row's new values at once, and the change log
is told what moved (``changes.record_each``), as every bulk writer tells it.

The UPDATE goes around the ORM's identity map: a caller holds no ``TaskInstance`` objects for these rows in its
session (the event endpoints load none), or they would keep their old state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec
from sqlalchemy import bindparam, select, text, update

from tocsin_server.db import models as m
from tocsin_server.db.types import UtcDateTime
from tocsin_server.generated.models import TaskInstanceStateName
from tocsin_server.services import changes
from tocsin_server.services._db import by_dialect, on_postgres, parameter_matches, table_of
from tocsin_server.services.workloads import chunks

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

DEFERRED: Final = TaskInstanceStateName.deferred.value
_TABLE: Final = table_of(m.TaskInstance)
_TI: Final = _TABLE.c
# Core columns, not the mapped attributes: the rows come back without the ORM's per-row loading.
_COLUMNS: Final = (
    _TI.id,
    _TI.trigger_id,
    _TI.dag_id,
    _TI.run_id,
    _TI.task_id,
    _TI.map_index,
    _TI.try_number,
    _TI.next_method,
    _TI.next_kwargs,
)
"""What a deferred row is read with: its key (for the change log), its trigger and its resume arguments."""


@dataclass(frozen=True, slots=True)
class Deferred:
    """A deferred task instance as read (``_COLUMNS``, in that order): a plain object, because a result row's
    attribute access costs far more than a slot's, and every row is read several times."""

    id: uuid.UUID
    trigger_id: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    next_method: str | None
    next_kwargs: str | None


# PostgreSQL: the new values as one JSON array of objects (msgspec writes it in one call; PostgreSQL parses it),
# joined to the rows by id: one statement, one round trip, for any number of rows.
_POSTGRES_UPDATE: Final = text(
    "UPDATE task_instance SET state = exits.state, next_method = exits.next_method,"
    " next_kwargs = exits.next_kwargs, trigger_id = NULL, trigger_timeout = NULL, updated_at = :now"
    " FROM json_to_recordset(CAST(:exits AS json))"
    " AS exits(id uuid, state varchar(20), next_method varchar(1000), next_kwargs text)"
    " WHERE task_instance.id = exits.id AND task_instance.state = 'deferred'"
).bindparams(bindparam("now", type_=UtcDateTime()))
_JSON: Final = msgspec.json.Encoder()
# SQLite (and any other database): the same UPDATE per row, sent as one executemany.
_EACH_UPDATE: Final = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("exit_id"), _TABLE.c.state == DEFERRED)
    .values(
        state=bindparam("exit_state"),
        next_method=bindparam("exit_method"),
        next_kwargs=bindparam("exit_kwargs"),
        trigger_id=None,
        trigger_timeout=None,
        updated_at=bindparam("exit_now"),
    )
)


@dataclass(frozen=True, slots=True)
class Exit:
    """Where one deferred row goes: its new state, and the method and kwargs it resumes (or ends) with."""

    row: Deferred
    state: str
    next_method: str | None
    next_kwargs: str | None


_DEFERRED_OF: Final = by_dialect(
    lambda postgres: (
        select(*_COLUMNS)
        .where(parameter_matches(_TI.trigger_id, "trigger_ids", postgres=postgres), _TI.state == DEFERRED)
        .order_by(_TI.id)
        .with_for_update()
    )
)


async def deferred_by_trigger(session: AsyncSession, trigger_ids: Sequence[int]) -> dict[int, list[Deferred]]:
    """The deferred rows of ``trigger_ids`` (sorted), locked FOR UPDATE in id order; by trigger id."""
    found: dict[int, list[Deferred]] = {}
    for batch in chunks(trigger_ids):
        rows = await session.execute(_DEFERRED_OF(session), {"trigger_ids": batch})
        for row in rows.tuples():
            deferred = Deferred(*row)
            found.setdefault(deferred.trigger_id, []).append(deferred)
    return found


async def leave(session: AsyncSession, exits: Sequence[Exit], now: datetime) -> None:
    """Write ``exits`` (rows locked by ``deferred_by_trigger`` in this transaction) and log each change."""
    if not exits:
        return
    if on_postgres(session):
        moved = [
            {"id": e.row.id, "state": e.state, "next_method": e.next_method, "next_kwargs": e.next_kwargs}
            for e in exits
        ]
        await session.execute(_POSTGRES_UPDATE, {"exits": _JSON.encode(moved).decode(), "now": now})
    else:
        await session.execute(
            _EACH_UPDATE,
            [
                {
                    "exit_id": e.row.id,
                    "exit_state": e.state,
                    "exit_method": e.next_method,
                    "exit_kwargs": e.next_kwargs,
                    "exit_now": now,
                }
                for e in exits
            ],
        )
    changes.record_each(
        session,
        ((e.row, DEFERRED, e.state, changes.reason_for(DEFERRED, e.state, e.next_method)) for e in exits),
        now=now,
    )
