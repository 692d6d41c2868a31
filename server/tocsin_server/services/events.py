"""Trigger events and failures: fenced to the holding job, idempotent by (trigger_id, event_id), one transaction.

A task-bound payload is never decoded: it arrives as ``msgspec.Raw`` bytes and is spliced into the stored
next_kwargs JSON text, whose own top-level values also stay raw. Only asset watchers decode a payload, through
``tocsin_wire.serde`` with the configured allowlist; a refused class fails that watcher's event alone.

Lock order, shared with every other writer: trigger rows (by id) before task-instance rows.

The task instances an event moves are read and written set-based (services/deferral_exits.py): a batch of
events costs a few statements, not an ORM object and an UPDATE per task instance.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import msgspec
from sqlalchemy import select, text, tuple_, update
from tocsin_wire import serde

from tocsin_server import metrics
from tocsin_server.db import models as m
from tocsin_server.errors import ConflictError, InvalidError, NotFoundError, ServiceError, TooLargeError
from tocsin_server.generated.models import TaskInstanceStateName
from tocsin_server.services._db import by_dialect, insert_rows, on_postgres, parameter_matches, table_of, upsert
from tocsin_server.services._deferral import FAIL_METHOD, fail_kwargs
from tocsin_server.services._time import utcnow
from tocsin_server.services.deferral_exits import Deferred, Exit, deferred_by_trigger, leave
from tocsin_server.services.read_cache import xcom_key
from tocsin_server.services.read_invalidation import touch
from tocsin_server.services.workloads import chunks

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

_log = logging.getLogger("tocsin.server.events")
S = TaskInstanceStateName
__all__ = ["FAIL_METHOD", "EventLimits", "EventOutcome", "EventType", "IncomingEvent", "fail_kwargs", "submit_events"]
_XCOM_KEY: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_NEXT_KWARGS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODE: Final = msgspec.json.Encoder()
_RECORDS: Final = table_of(m.TriggerEvent)
_TRIGGERS: Final = table_of(m.Trigger)
_HOLDERS_OF: Final = by_dialect(
    lambda postgres: (
        select(_TRIGGERS.c.id, _TRIGGERS.c.triggerer_id)  # Core columns: no ORM loading of the rows
        .where(parameter_matches(_TRIGGERS.c.id, "trigger_ids", postgres=postgres))
        .order_by(_TRIGGERS.c.id)
        .with_for_update()
    )
)
_WATCHERS_OF: Final = by_dialect(
    lambda postgres: (
        select(m.AssetWatcher)
        .where(parameter_matches(m.AssetWatcher.trigger_id, "trigger_ids", postgres=postgres))
        .order_by(m.AssetWatcher.id)
    )
)
_RECORDED_ANY: Final = text(
    "SELECT recorded.trigger_id, recorded.event_id, recorded.task_instances_resumed FROM trigger_event AS recorded"
    " JOIN json_to_recordset(CAST(:wanted AS json)) AS wanted(trigger_id bigint, event_id varchar(100))"
    " ON recorded.trigger_id = wanted.trigger_id AND recorded.event_id = wanted.event_id"
)
"""PostgreSQL: the recorded events among (trigger_id, event_id) pairs given as one JSON array, in one statement."""


class EventType(StrEnum):
    """What an event does to the task instances deferred on its trigger."""

    resume = "resume"
    task_success = "task_success"
    task_failed = "task_failed"
    task_skipped = "task_skipped"


_SCHEDULED: Final = S.scheduled.value  # read once: an enum member's value is a property
TERMINAL_STATE: Final = {
    EventType.task_success: S.success,
    EventType.task_failed: S.failed,
    EventType.task_skipped: S.skipped,
}


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    trigger_id: int
    event_id: str
    payload: msgspec.Raw
    event_type: EventType = EventType.resume
    xcoms: msgspec.Raw | None = None


@dataclass(slots=True)
class EventOutcome:
    trigger_id: int
    event_id: str
    duplicate: bool = False
    task_instances_resumed: int = 0
    error: ServiceError | None = None


@dataclass(frozen=True, slots=True)
class EventLimits:
    max_payload_bytes: int
    allowed_classes: tuple[str, ...]


def merged_next_kwargs(stored: str | None, payload: msgspec.Raw) -> str:
    """``stored`` (a JSON object, as text) with ``{"event": payload}`` merged in; no value is decoded."""
    kwargs = _NEXT_KWARGS.decode(stored or "{}")
    kwargs["event"] = payload
    return _ENCODE.encode(kwargs).decode()


def _precheck(event: IncomingEvent, limits: EventLimits) -> tuple[ServiceError | None, dict[str, msgspec.Raw]]:  # noqa: PLR0911 - one return per rule
    """Per-event checks that need no database: sizes and the shape of terminal XComs."""
    if len(event.payload) > limits.max_payload_bytes:
        msg = f"the payload has {len(event.payload)} bytes; the limit is {limits.max_payload_bytes}"
        return TooLargeError(msg, field="payload"), {}
    if event.xcoms is None:
        return None, {}
    if len(event.xcoms) > limits.max_payload_bytes:
        msg = f"the xcoms have {len(event.xcoms)} bytes; the limit is {limits.max_payload_bytes}"
        return TooLargeError(msg, field="xcoms"), {}
    if event.event_type is EventType.resume:
        return InvalidError("xcoms are pushed only by terminal event types", field="xcoms"), {}
    try:
        xcoms = _NEXT_KWARGS.decode(event.xcoms)
    except msgspec.ValidationError:
        return InvalidError("xcoms must be an object of key → JSON value", field="xcoms"), {}
    for key in xcoms:
        if not (0 < len(key) <= 250 and _XCOM_KEY.match(key)):
            return InvalidError(f"xcom key {key!r} is not a valid identifier", field="xcoms"), {}
    return None, xcoms


async def submit_events(
    session: AsyncSession, job_id: int, events: Sequence[IncomingEvent], limits: EventLimits
) -> list[EventOutcome]:
    """Apply ``events`` for ``job_id``; one outcome per event, in order. A failed item changes nothing."""
    outcomes = await _submit(session, job_id, events, limits)
    refused = sum(1 for o in outcomes if o.error is not None)
    duplicates = sum(1 for o in outcomes if o.error is None and o.duplicate)
    # A refusal is an answer, counted now (the request may roll back because of it); the others once committed.
    metrics.EVENTS_REFUSED.inc(refused)
    metrics.count_on_commit(session, metrics.EVENTS_DUPLICATE, duplicates)
    metrics.count_on_commit(session, metrics.EVENTS_APPLIED, len(outcomes) - refused - duplicates)
    return outcomes


async def _submit(
    session: AsyncSession, job_id: int, events: Sequence[IncomingEvent], limits: EventLimits
) -> list[EventOutcome]:
    outcomes = [EventOutcome(e.trigger_id, e.event_id) for e in events]
    xcoms_of: dict[int, dict[str, msgspec.Raw]] = {}
    pending: list[int] = []
    for index, event in enumerate(events):
        error, xcoms = _precheck(event, limits)
        if error is not None:
            outcomes[index].error = error
        else:
            xcoms_of[index] = xcoms
            pending.append(index)

    if len(pending) == 1:
        fenced = await _fence_one(session, job_id, events, outcomes, pending[0])
    else:
        # 1. Events already applied answer as they did, whoever holds the trigger now (a retried lost 2xx), and
        # lock nothing: a retried batch does not wait for its triggers.
        pending = await _answer_recorded(session, events, outcomes, pending)
        if not pending:
            return outcomes
        # 2. Fence: lock the triggers (in id order) and keep only those the caller holds.
        fenced = await _fence(session, job_id, events, outcomes, pending)
        # Under the trigger locks, a concurrent copy of an event has either committed its record or not started.
        fenced = await _answer_recorded(session, events, outcomes, fenced)
    if not fenced:
        return outcomes

    # 3. Apply, in order. The first event of a trigger moves its task instances; every one feeds its watchers.
    held = sorted({events[i].trigger_id for i in fenced})
    deferred = await deferred_by_trigger(session, held)
    watchers = await _watchers_by_trigger(session, held)
    now = utcnow()
    seen: dict[tuple[int, str], int] = {}
    records: list[dict[str, Any]] = []
    exits: list[Exit] = []
    for index in fenced:
        event = events[index]
        key = (event.trigger_id, event.event_id)
        if key in seen:  # the same event twice in one batch: applied once, answered alike
            outcomes[index].duplicate = True
            outcomes[index].task_instances_resumed = outcomes[seen[key]].task_instances_resumed
            continue
        seen[key] = index
        task_instances = deferred.pop(event.trigger_id, [])
        if event.event_type in TERMINAL_STATE:
            await _push_xcoms(session, task_instances, xcoms_of[index], now)
        exits.extend(_exit(ti, event) for ti in task_instances)
        for watcher in watchers.get(event.trigger_id, []):
            await _apply_to_watcher(session, watcher, event, limits, now)
        outcomes[index].task_instances_resumed = len(task_instances)
        records.append(
            {
                "trigger_id": event.trigger_id,
                "event_id": event.event_id,
                "job_id": job_id,
                "received_at": now,
                "task_instances_resumed": len(task_instances),
            }
        )
    await leave(session, exits, now)
    await session.flush()  # the watchers' asset events
    await insert_rows(session, _RECORDS, records)
    return outcomes


async def _fence(
    session: AsyncSession,
    job_id: int,
    events: Sequence[IncomingEvent],
    outcomes: list[EventOutcome],
    indexes: list[int],
) -> list[int]:
    """Lock the events' triggers in id order; keep the events whose trigger the caller holds."""
    trigger_ids = sorted({events[i].trigger_id for i in indexes})
    holders: dict[int, int | None] = {}
    for batch in chunks(trigger_ids):
        rows = await session.execute(_HOLDERS_OF(session), {"trigger_ids": batch})
        holders.update(dict(rows.tuples().all()))
    fenced: list[int] = []
    for index in indexes:
        trigger_id = events[index].trigger_id
        if trigger_id not in holders:
            outcomes[index].error = NotFoundError(
                f"trigger {trigger_id} does not exist (it may have been cleaned up)", field="trigger_id"
            )
        elif holders[trigger_id] != job_id:
            outcomes[index].error = ConflictError(
                f"trigger {trigger_id} is not held by job {job_id}: cancel it", field="trigger_id"
            )
        else:
            fenced.append(index)
    return fenced


async def _fence_one(
    session: AsyncSession, job_id: int, events: Sequence[IncomingEvent], outcomes: list[EventOutcome], index: int
) -> list[int]:
    """One event (the single-event endpoint): the batch's answers in one statement fewer. Fence first, then look
    for its record under the lock (a concurrent copy has committed it or not started); a recorded event answers
    as it did even when the fence refused it, as the batch's unlocked first look would have. Its usual case, a
    first delivery, is not recorded: the look before the lock would only have cost a statement."""
    fenced = await _fence(session, job_id, events, outcomes, [index])
    if not await _answer_recorded(session, events, outcomes, [index]):
        outcomes[index].error = None  # recorded: a duplicate, whoever holds (or whether anyone holds) the trigger
        return []
    return fenced


async def _answer_recorded(
    session: AsyncSession, events: Sequence[IncomingEvent], outcomes: list[EventOutcome], indexes: list[int]
) -> list[int]:
    """Answer the events already recorded as duplicates; return the indexes still to apply."""
    keys = list(dict.fromkeys((events[i].trigger_id, events[i].event_id) for i in indexes))
    recorded: dict[tuple[int, str], int] = {}
    if on_postgres(session):
        wanted = _ENCODE.encode([{"trigger_id": t, "event_id": e} for t, e in keys]).decode()
        rows = await session.execute(_RECORDED_ANY, {"wanted": wanted})
        recorded.update({(t, e): n for t, e, n in rows.tuples()})
    else:
        for batch in chunks(keys, 500):
            rows = await session.execute(
                select(m.TriggerEvent.trigger_id, m.TriggerEvent.event_id, m.TriggerEvent.task_instances_resumed).where(
                    tuple_(m.TriggerEvent.trigger_id, m.TriggerEvent.event_id).in_(batch)
                )
            )
            recorded.update({(t, e): n for t, e, n in rows.tuples()})
    remaining = []
    for index in indexes:
        count = recorded.get((events[index].trigger_id, events[index].event_id))
        if count is None:
            remaining.append(index)
        else:
            outcomes[index].duplicate = True
            outcomes[index].task_instances_resumed = count
    return remaining


async def _watchers_by_trigger(session: AsyncSession, trigger_ids: list[int]) -> dict[int, list[m.AssetWatcher]]:
    found: dict[int, list[m.AssetWatcher]] = {}
    for batch in chunks(trigger_ids):
        for watcher in await session.scalars(_WATCHERS_OF(session), {"trigger_ids": batch}):
            found.setdefault(watcher.trigger_id, []).append(watcher)
    return found


async def _push_xcoms(
    session: AsyncSession, task_instances: Sequence[Deferred], xcoms: dict[str, msgspec.Raw], now: datetime
) -> None:
    """A terminal event's XComs, pushed for each task instance it ends (one upsert each: terminal events are few)."""
    for ti in task_instances:
        for key, value in xcoms.items():
            touch(session, xcom_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, key))
            await upsert(
                session,
                m.XCom,
                {
                    "dag_id": ti.dag_id,
                    "run_id": ti.run_id,
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "key": key,
                    "value": bytes(value).decode(),
                    "updated_at": now,
                },
            )


def _exit(ti: Deferred, event: IncomingEvent) -> Exit:
    """Where ``event`` sends the deferred row ``ti``."""
    terminal = TERMINAL_STATE.get(event.event_type)
    if terminal is not None:
        return Exit(ti, terminal.value, None, None)
    try:
        return Exit(ti, _SCHEDULED, ti.next_method, merged_next_kwargs(ti.next_kwargs, event.payload))
    except (msgspec.DecodeError, msgspec.ValidationError):
        # Poison ends, it never loops: the task fails with a reason instead of the event being redelivered.
        _log.warning("task instance %s has stored next_kwargs that are not a JSON object; failing it", ti.id)
        reason = fail_kwargs("cannot resume: the stored next_kwargs are not a JSON object")
        return Exit(ti, _SCHEDULED, FAIL_METHOD, reason)


async def _apply_to_watcher(
    session: AsyncSession, watcher: m.AssetWatcher, event: IncomingEvent, limits: EventLimits, now: datetime
) -> None:
    if event.event_type is not EventType.resume:
        return  # terminal types address task instances; an asset only records data events
    try:
        serde.deserialize(msgspec.json.decode(event.payload), allowed=limits.allowed_classes)
    except Exception as exc:  # noqa: BLE001 - whatever an allowed class raises fails this watcher's event alone
        metrics.count_on_commit(session, metrics.ASSET_EVENTS_REFUSED)
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        _log.warning(
            "asset watcher %s refused event %s of trigger %s: %s", watcher.id, event.event_id, event.trigger_id, reason
        )
        await session.execute(
            update(m.AssetWatcher)
            .where(m.AssetWatcher.id == watcher.id)
            .values(refused_count=m.AssetWatcher.refused_count + 1, last_error=reason)
        )
        return
    session.add(
        m.AssetEvent(
            asset_name=watcher.asset_name,
            watcher_id=watcher.id,
            trigger_id=event.trigger_id,
            event_id=event.event_id,
            payload=bytes(event.payload).decode(),
            created_at=now,
        )
    )


async def submit_failure(
    session: AsyncSession, job_id: int, trigger_id: int, error: str, traceback: Sequence[str]
) -> int:
    """Schedule the trigger's deferred task instances with ``__fail__``; returns how many."""
    holder = await session.execute(select(m.Trigger.triggerer_id).where(m.Trigger.id == trigger_id).with_for_update())
    row = holder.first()
    if row is None:
        msg = f"trigger {trigger_id} does not exist (it may have been cleaned up)"
        raise NotFoundError(msg, field="trigger_id")
    if row[0] != job_id:
        msg = f"trigger {trigger_id} is not held by job {job_id}: cancel it"
        raise ConflictError(msg, field="trigger_id")
    now = utcnow()
    deferred = (await deferred_by_trigger(session, [trigger_id])).get(trigger_id, [])
    kwargs = fail_kwargs(error, traceback)
    await leave(session, [Exit(ti, _SCHEDULED, FAIL_METHOD, kwargs) for ti in deferred], now)
    await session.execute(
        update(m.AssetWatcher).where(m.AssetWatcher.trigger_id == trigger_id).values(last_error=error[:2000])
    )
    return len(deferred)
