"""XComs: values stored as the JSON text received, returned without re-encoding."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import select

from tocsin_server.db import models as m
from tocsin_server.db.reads import GET_XCOM, Reads
from tocsin_server.errors import NotFoundError
from tocsin_server.generated.models import XCom, XComBody
from tocsin_server.services._db import upsert
from tocsin_server.services._json import raw_json
from tocsin_server.services._time import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


class XComKey(msgspec.Struct, frozen=True):
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    key: str


async def get_xcom(reads: Reads, ref: XComKey) -> XCom:
    row = await reads.fetch_one(GET_XCOM, msgspec.structs.asdict(ref))
    if row is None:
        msg = f"no XCom {ref.key!r} for {ref.dag_id}/{ref.run_id}/{ref.task_id}[{ref.map_index}]"
        raise NotFoundError(msg, field="key")
    return XCom(key=row[0], value=raw_json(row[1]))


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
    await upsert(session, m.XCom, {**msgspec.structs.asdict(ref), "value": encoded, "updated_at": utcnow()})
    return XCom(key=ref.key, value=body.value)
