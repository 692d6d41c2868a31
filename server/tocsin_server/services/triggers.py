"""Triggers: the admin view (claims, events and failures come with the orchestration endpoints)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from tocsin_server.db import models as m
from tocsin_server.generated.models import Trigger, TriggerList

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession


async def list_triggers(session: AsyncSession, *, limit: int, offset: int) -> TriggerList:
    total = await session.scalar(select(func.count()).select_from(m.Trigger))
    triggers = list(await session.scalars(select(m.Trigger).order_by(m.Trigger.id).limit(limit).offset(offset)))
    ids = [t.id for t in triggers]
    consumers: dict[int, list[uuid.UUID]] = defaultdict(list)
    watchers: dict[int, int] = {}
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
    return TriggerList(
        triggers=[
            Trigger(
                id=t.id,
                classpath=t.classpath,
                created_date=t.created_date,
                triggerer_id=t.triggerer_id,
                task_instance_ids=consumers.get(t.id, []),
                asset_watcher_count=watchers.get(t.id, 0),
            )
            for t in triggers
        ],
        total=total or 0,
    )
