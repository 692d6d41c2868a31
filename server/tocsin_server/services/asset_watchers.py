"""Asset watchers: triggers that feed an asset, created and inspected through the admin API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import func, select

from tocsin_server.db import models as m
from tocsin_server.db.cipher import PLAINTEXT, KwargsCipher
from tocsin_server.errors import NotFoundError
from tocsin_server.generated.models import AssetEvent, AssetEventList, AssetWatcher, AssetWatcherBody, AssetWatcherList
from tocsin_server.services._json import raw_json
from tocsin_server.services._time import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def _not_found(watcher_id: int) -> NotFoundError:
    return NotFoundError(f"asset watcher {watcher_id} does not exist", field="watcher_id")


def _event_count() -> object:
    return (
        select(func.count(m.AssetEvent.id))
        .where(m.AssetEvent.watcher_id == m.AssetWatcher.id)
        .correlate(m.AssetWatcher)
        .scalar_subquery()
    )


def _to_model(watcher: m.AssetWatcher, trigger: m.Trigger, events: int) -> AssetWatcher:
    return AssetWatcher(
        id=watcher.id,
        asset_name=watcher.asset_name,
        trigger_id=trigger.id,
        classpath=trigger.classpath,
        triggerer_id=trigger.triggerer_id,
        event_count=events,
        refused_count=watcher.refused_count,
        last_error=watcher.last_error,
    )


async def create(session: AsyncSession, body: AssetWatcherBody, *, cipher: KwargsCipher = PLAINTEXT) -> AssetWatcher:
    kwargs = cipher.seal(msgspec.json.encode(body.trigger_kwargs).decode())
    trigger = m.Trigger(classpath=body.classpath, kwargs=kwargs, created_date=utcnow())
    session.add(trigger)
    await session.flush()
    watcher = m.AssetWatcher(asset_name=body.asset_name, trigger_id=trigger.id, refused_count=0)
    session.add(watcher)
    await session.flush()
    return _to_model(watcher, trigger, 0)


async def list_watchers(session: AsyncSession, *, limit: int, offset: int) -> AssetWatcherList:
    total = await session.scalar(select(func.count()).select_from(m.AssetWatcher))
    rows = await session.execute(
        select(m.AssetWatcher, m.Trigger, _event_count())  # type: ignore[call-overload]
        .join(m.Trigger, m.Trigger.id == m.AssetWatcher.trigger_id)
        .order_by(m.AssetWatcher.id)
        .limit(limit)
        .offset(offset)
    )
    return AssetWatcherList(
        asset_watchers=[_to_model(watcher, trigger, count) for watcher, trigger, count in rows.tuples()],
        total=total or 0,
    )


async def delete(session: AsyncSession, watcher_id: int) -> None:
    watcher = await session.get(m.AssetWatcher, watcher_id)
    if watcher is None:
        raise _not_found(watcher_id)
    await session.delete(watcher)


async def list_events(session: AsyncSession, watcher_id: int, *, limit: int, offset: int) -> AssetEventList:
    if await session.get(m.AssetWatcher, watcher_id) is None:
        raise _not_found(watcher_id)
    query = select(m.AssetEvent).where(m.AssetEvent.watcher_id == watcher_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(m.AssetEvent.id).limit(limit).offset(offset))
    return AssetEventList(
        asset_events=[
            AssetEvent(
                id=e.id,
                asset_name=e.asset_name,
                watcher_id=e.watcher_id,
                trigger_id=e.trigger_id,
                event_id=e.event_id,
                payload=raw_json(e.payload or "null"),
                created_at=e.created_at,
            )
            for e in rows
        ],
        total=total or 0,
    )
