"""XComs: values stored as the JSON text received, returned without re-encoding.

The runtime read goes through the process's read cache (services/read_cache.py). Every XCom is cacheable, not
only those of finished task instances: every write of one (a push here, a terminal event's in services/events.py)
names its key, so a running task's next push replaces the cached value like any other write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select

from tocsin_server.db import models as m
from tocsin_server.db.reads import GET_XCOM, Reads
from tocsin_server.errors import NotFoundError
from tocsin_server.generated.models import XCom, XComBody
from tocsin_server.services._db import upsert
from tocsin_server.services._json import raw_json
from tocsin_server.services._time import utcnow
from tocsin_server.services.read_cache import ABSENT, NO_CACHE, ReadCache, xcom_key
from tocsin_server.services.read_invalidation import touch

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


class XComKey(msgspec.Struct, frozen=True):
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    key: str


async def get_xcom(reads: Reads, ref: XComKey, *, cache: ReadCache = NO_CACHE) -> XCom:
    cache_key = xcom_key(ref.dag_id, ref.run_id, ref.task_id, ref.map_index, ref.key)
    key_weight = sum(len(part) for part in cache_key if isinstance(part, str))

    async def load() -> tuple[Any, int]:
        row = await reads.fetch_one(GET_XCOM, msgspec.structs.asdict(ref))
        if row is None:
            return ABSENT, key_weight
        return XCom(key=row[0], value=raw_json(row[1])), key_weight + len(row[1])

    found = await cache.read_through(cache_key, load)
    if found is ABSENT:
        msg = f"no XCom {ref.key!r} for {ref.dag_id}/{ref.run_id}/{ref.task_id}[{ref.map_index}]"
        raise NotFoundError(msg, field="key")
    xcom: XCom = found
    return xcom


async def set_xcom(session: AsyncSession, ref: XComKey, body: XComBody) -> XCom:
    owner = await session.scalar(
        select(m.TaskInstance.id).where(
            m.TaskInstance.dag_id == ref.dag_id,
            m.TaskInstance.run_id == ref.run_id,
            m.TaskInstance.task_id == ref.task_id,
            m.TaskInstance.map_index == ref.map_index,
        )
    )
    if owner is None:
        msg = f"task instance {ref.dag_id}/{ref.run_id}/{ref.task_id}[{ref.map_index}] does not exist"
        raise NotFoundError(msg, field="task_id")
    encoded = msgspec.json.encode(body.value).decode()
    touch(session, xcom_key(ref.dag_id, ref.run_id, ref.task_id, ref.map_index, ref.key))
    await upsert(session, m.XCom, {**msgspec.structs.asdict(ref), "value": encoded, "updated_at": utcnow()})
    return XCom(key=ref.key, value=body.value)
