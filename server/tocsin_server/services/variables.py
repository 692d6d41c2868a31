"""Variables: hot reads by key, writes in the request's transaction.

With keys configured, values are stored encrypted (``db.cipher``, as Airflow does) and decrypted on the way out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from tocsin_server.db import models as m
from tocsin_server.db.cipher import PLAINTEXT, KwargsCipher
from tocsin_server.db.reads import GET_VARIABLE, Reads
from tocsin_server.errors import NotFoundError
from tocsin_server.generated.models import Variable, VariableBody, VariableList
from tocsin_server.services._db import upsert

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


async def get_variable(reads: Reads, key: str, *, cipher: KwargsCipher = PLAINTEXT) -> Variable:
    row = await reads.fetch_one(GET_VARIABLE, {"key": key})
    if row is None:
        msg = f"variable {key!r} does not exist"
        raise NotFoundError(msg, field="key")
    return Variable(key=row[0], value=cipher.open(row[1]), description=row[2])


async def put_variable(
    session: AsyncSession, key: str, body: VariableBody, *, cipher: KwargsCipher = PLAINTEXT
) -> Variable:
    description = body.description if isinstance(body.description, str) else None
    await upsert(session, m.Variable, {"key": key, "value": cipher.seal(body.value), "description": description})
    return Variable(key=key, value=body.value, description=description)


async def delete_variable(session: AsyncSession, key: str) -> None:
    variable = await session.get(m.Variable, key)
    if variable is None:
        msg = f"variable {key!r} does not exist"
        raise NotFoundError(msg, field="key")
    await session.delete(variable)


async def list_variables(
    session: AsyncSession, *, limit: int, offset: int, cipher: KwargsCipher = PLAINTEXT
) -> VariableList:
    total = await session.scalar(select(func.count()).select_from(m.Variable))
    rows = await session.scalars(select(m.Variable).order_by(m.Variable.key).limit(limit).offset(offset))
    return VariableList(
        variables=[Variable(key=v.key, value=cipher.open(v.value), description=v.description) for v in rows],
        total=total or 0,
    )
