"""Triggers: the admin view (claims, events and failures come with the orchestration endpoints)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import ColumnElement, and_, func, not_, select, text

from tocsin_server.db import models as m
from tocsin_server.generated.models import Trigger, TriggerError, TriggerList, TriggerState
from tocsin_server.services._time import utcnow
from tocsin_server.services.jobs import alive_clause

if TYPE_CHECKING:
    import uuid
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

ERROR_LINES: Final = text("trigger_log.level IN ('error', 'critical')")
"""Written as literal SQL, the predicate of the partial index ``ix_trigger_log_trigger_errors``: a bound
parameter would keep PostgreSQL's generic plans from proving that the index covers the query."""


@dataclass(frozen=True, slots=True)
class TriggerFilter:
    """What the admin list narrows to; None everywhere lists every trigger."""

    state: TriggerState | None = None
    job_id: int | None = None
    classpath: str | None = None


def _conditions(wanted: TriggerFilter, *, now: datetime, liveness_threshold_s: float) -> list[ColumnElement[bool]]:
    alive_jobs = select(m.Job.id).where(alive_clause(now=now, liveness_threshold_s=liveness_threshold_s))
    conditions: list[ColumnElement[bool]] = []
    if wanted.state is TriggerState.unassigned:
        conditions.append(m.Trigger.triggerer_id.is_(None))
    elif wanted.state is TriggerState.assigned:
        conditions.append(m.Trigger.triggerer_id.in_(alive_jobs))
    elif wanted.state is TriggerState.orphaned:
        conditions.append(and_(m.Trigger.triggerer_id.is_not(None), not_(m.Trigger.triggerer_id.in_(alive_jobs))))
    if wanted.job_id is not None:
        conditions.append(m.Trigger.triggerer_id == wanted.job_id)
    if wanted.classpath is not None:
        conditions.append(m.Trigger.classpath == wanted.classpath)
    return conditions


async def _last_errors(session: AsyncSession, ids: list[int]) -> dict[int, TriggerError]:
    """The newest error (or critical) line of each trigger in ``ids`` that logged one."""
    newest = (
        select(func.max(m.TriggerLog.id))
        .where(m.TriggerLog.trigger_id.in_(ids), ERROR_LINES)
        .group_by(m.TriggerLog.trigger_id)
    )
    rows = await session.scalars(select(m.TriggerLog).where(m.TriggerLog.id.in_(newest)))
    return {
        r.trigger_id: TriggerError(
            timestamp=r.timestamp, level=r.level, event=r.event, task_instance_id=r.task_instance_id
        )
        for r in rows
    }


async def list_triggers(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    liveness_threshold_s: float,
    wanted: TriggerFilter = TriggerFilter(),  # frozen: one shared default is safe
) -> TriggerList:
    now = utcnow()
    conditions = _conditions(wanted, now=now, liveness_threshold_s=liveness_threshold_s)
    total = await session.scalar(select(func.count()).select_from(m.Trigger).where(*conditions))
    triggers = list(
        await session.scalars(select(m.Trigger).where(*conditions).order_by(m.Trigger.id).limit(limit).offset(offset))
    )
    ids = [t.id for t in triggers]
    consumers: dict[int, list[uuid.UUID]] = defaultdict(list)
    watchers: dict[int, int] = {}
    live: set[int] = set()
    errors: dict[int, TriggerError] = {}
    if ids:
        deferred = await session.execute(
            select(m.TaskInstance.trigger_id, m.TaskInstance.id).where(m.TaskInstance.trigger_id.in_(ids))
        )
        for trigger_id, task_instance_id in deferred.tuples():
            if trigger_id is not None:
                consumers[trigger_id].append(task_instance_id)
        counted = await session.execute(
            select(m.AssetWatcher.trigger_id, func.count())
            .where(m.AssetWatcher.trigger_id.in_(ids))
            .group_by(m.AssetWatcher.trigger_id)
        )
        watchers = dict(counted.tuples().all())
        holders = {t.triggerer_id for t in triggers if t.triggerer_id is not None}
        if holders:
            live = set(
                await session.scalars(
                    select(m.Job.id).where(
                        m.Job.id.in_(holders), alive_clause(now=now, liveness_threshold_s=liveness_threshold_s)
                    )
                )
            )
        errors = await _last_errors(session, ids)
    return TriggerList(
        triggers=[
            Trigger(
                id=t.id,
                classpath=t.classpath,
                created_date=t.created_date,
                age_s=max(0.0, (now - t.created_date).total_seconds()),
                state=_state(t.triggerer_id, live),
                triggerer_id=t.triggerer_id,
                task_instance_ids=consumers.get(t.id, []),
                asset_watcher_count=watchers.get(t.id, 0),
                last_error=errors.get(t.id),
            )
            for t in triggers
        ],
        total=total or 0,
    )


def _state(triggerer_id: int | None, live: set[int]) -> TriggerState:
    if triggerer_id is None:
        return TriggerState.unassigned
    return TriggerState.assigned if triggerer_id in live else TriggerState.orphaned
