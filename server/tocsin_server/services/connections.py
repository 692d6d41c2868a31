"""Connections: hot reads by id, admin writes.

Secrets are write-only: the password is stored and handed to the runtime read (``getConnection``, which the
triggers connecting with it need), never to an admin answer (``ConnectionInfo`` has no password field).
With keys configured, the password and the extra are stored encrypted (``db.cipher``) and decrypted on the way out.
The runtime read goes through the process's read cache (services/read_cache.py: decrypted, never logged); every
write names its key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import UNSET
from sqlalchemy import func, select

from tocsin_server.db import models as m
from tocsin_server.db.cipher import PLAINTEXT, KwargsCipher
from tocsin_server.db.reads import GET_CONNECTION, Reads
from tocsin_server.errors import NotFoundError
from tocsin_server.generated.models import Connection, ConnectionBody, ConnectionInfo, ConnectionList
from tocsin_server.services._db import upsert
from tocsin_server.services.read_cache import ABSENT, NO_CACHE, ReadCache, connection_key
from tocsin_server.services.read_invalidation import touch

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

_FIELDS = ("host", "schema", "login", "password", "port", "extra")
_SEALED = ("password", "extra")


def _not_found(conn_id: str) -> NotFoundError:
    return NotFoundError(f"connection {conn_id!r} does not exist", field="conn_id")


async def get_connection(
    reads: Reads, conn_id: str, *, cipher: KwargsCipher = PLAINTEXT, cache: ReadCache = NO_CACHE
) -> Connection:
    async def load() -> tuple[Any, int]:
        row = await reads.fetch_one(GET_CONNECTION, {"conn_id": conn_id})
        if row is None:
            return ABSENT, len(conn_id)
        connection = Connection(
            conn_id=row[0],
            conn_type=row[1],
            host=row[2],
            schema=row[3],
            login=row[4],
            password=cipher.open_optional(row[5]),
            port=row[6],
            extra=cipher.open_optional(row[7]),
        )
        return connection, sum(len(value) for value in row if isinstance(value, str))

    found = await cache.read_through(connection_key(conn_id), load)
    if found is ABSENT:
        raise _not_found(conn_id)
    connection: Connection = found
    return connection


def _info(row: m.Connection, cipher: KwargsCipher) -> ConnectionInfo:
    return ConnectionInfo(
        conn_id=row.conn_id,
        conn_type=row.conn_type,
        host=row.host,
        schema=row.schema,
        login=row.login,
        port=row.port,
        extra=cipher.open_optional(row.extra),
    )


async def put_connection(
    session: AsyncSession, conn_id: str, body: ConnectionBody, *, cipher: KwargsCipher = PLAINTEXT
) -> ConnectionInfo:
    values: dict[str, Any] = {name: getattr(body, name) for name in _FIELDS}
    values = {name: (None if value is UNSET else value) for name, value in values.items()}
    stored = {**values, **{name: cipher.seal_optional(values[name]) for name in _SEALED}}
    touch(session, connection_key(conn_id))
    await upsert(session, m.Connection, {"conn_id": conn_id, "conn_type": body.conn_type, **stored})
    shown = {name: value for name, value in values.items() if name != "password"}
    return ConnectionInfo(conn_id=conn_id, conn_type=body.conn_type, **shown)


async def delete_connection(session: AsyncSession, conn_id: str) -> None:
    row = await session.get(m.Connection, conn_id)
    if row is None:
        raise _not_found(conn_id)
    touch(session, connection_key(conn_id))
    await session.delete(row)


async def list_connections(
    session: AsyncSession, *, limit: int, offset: int, cipher: KwargsCipher = PLAINTEXT
) -> ConnectionList:
    total = await session.scalar(select(func.count()).select_from(m.Connection))
    rows = await session.scalars(select(m.Connection).order_by(m.Connection.conn_id).limit(limit).offset(offset))
    return ConnectionList(connections=[_info(r, cipher) for r in rows], total=total or 0)
