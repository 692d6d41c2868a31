"""Variables: hot reads by key, writes in the request's transaction.

With keys configured, values are stored encrypted (``db.cipher``, as Airflow does) and decrypted on the way out.
The runtime read goes through the process's read cache (services/read_cache.py); every write names its key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from tocsin_server.db import models as m
from tocsin_server.db.cipher import PLAINTEXT, KwargsCipher
from tocsin_server.db.reads import GET_VARIABLE, Reads
from tocsin_server.errors import NotFoundError
from tocsin_server.generated.models import Variable, VariableBody, VariableList
from tocsin_server.services._db import upsert
from tocsin_server.services.read_cache import ABSENT, NO_CACHE, ReadCache, variable_key
from tocsin_server.services.read_invalidation import touch

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


async def get_variable(
    reads: Reads, key: str, *, cipher: KwargsCipher = PLAINTEXT, cache: ReadCache = NO_CACHE
) -> Variable:
    async def load() -> tuple[Any, int]:
        row = await reads.fetch_one(GET_VARIABLE, {"key": key})
        if row is None:
            return ABSENT, len(key)
        variable = Variable(key=row[0], value=cipher.open(row[1]), description=row[2])
        return variable, len(row[0]) + len(variable.value) + len(row[2] or "")

    found = await cache.read_through(variable_key(key), load)
    if found is ABSENT:
        msg = f"variable {key!r} does not exist"
        raise NotFoundError(msg, field="key")
    variable: Variable = found
    return variable


async def put_variable(
    session: AsyncSession, key: str, body: VariableBody, *, cipher: KwargsCipher = PLAINTEXT
) -> Variable:
    description = body.description if isinstance(body.description, str) else None
    touch(session, variable_key(key))
    await upsert(session, m.Variable, {"key": key, "value": cipher.seal(body.value), "description": description})
    return Variable(key=key, value=body.value, description=description)


async def delete_variable(session: AsyncSession, key: str) -> None:
    variable = await session.get(m.Variable, key)
    if variable is None:
        msg = f"variable {key!r} does not exist"
        raise NotFoundError(msg, field="key")
    touch(session, variable_key(key))
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
