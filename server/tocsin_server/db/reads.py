"""The hot runtime reads, one round trip each and no ORM session.

DESIGN.md section 7: an ORM session per request costs ~780 µs here; an asyncpg pool without its reset
query ~90 µs. So on PostgreSQL these queries go straight to an asyncpg pool, and on SQLite through an
autocommit connection. The SQL is written once with ``:name`` parameters.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final, Protocol

from sqlalchemy import text

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import asyncpg
    from sqlalchemy.ext.asyncio import AsyncEngine

    from tocsin_server.config import Settings

GET_VARIABLE: Final = "SELECT key, value, description FROM variable WHERE key = :key"
GET_CONNECTION: Final = (
    "SELECT conn_id, conn_type, host, schema, login, password, port, extra FROM connection WHERE conn_id = :conn_id"
)
GET_XCOM: Final = (
    "SELECT key, value FROM xcom WHERE dag_id = :dag_id AND run_id = :run_id AND task_id = :task_id"
    " AND map_index = :map_index AND key = :key"
)
GET_TASK_STATES: Final = (
    "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = :dag_id AND run_id = :run_id"
    " ORDER BY task_id, map_index"
)
GET_DAG_RUN_STATE: Final = "SELECT state FROM dag_run WHERE dag_id = :dag_id AND run_id = :run_id"
GET_MIGRATION: Final = "SELECT version_num FROM alembic_version"

_PARAMETER: Final = re.compile(r":(\w+)")


class Reads(Protocol):
    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None: ...

    async def fetch_all(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def to_numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` parameters to asyncpg's ``$n``, with the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    return _PARAMETER.sub(number, sql), tuple(names)


async def _skip_reset(_: asyncpg.Connection[Any]) -> None:
    """Read-only, autocommit use leaves no session state to reset: skip asyncpg's reset round trip."""


class AsyncpgReads:
    """Hot reads on PostgreSQL through a plain asyncpg pool."""

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._size = size
        self._pool: asyncpg.Pool[Any] | None = None
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    async def start(self) -> None:
        import asyncpg  # noqa: PLC0415 - the PostgreSQL extra is optional

        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._size, reset=_skip_reset)

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    def _args(self, sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        compiled = self._compiled.get(sql)
        if compiled is None:
            compiled = self._compiled[sql] = to_numbered(sql)
        numbered, names = compiled
        return numbered, [params[name] for name in names]

    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        assert self._pool is not None
        numbered, args = self._args(sql, params)
        return await self._pool.fetchrow(numbered, *args)  # type: ignore[no-any-return]

    async def fetch_all(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        assert self._pool is not None
        numbered, args = self._args(sql, params)
        return await self._pool.fetch(numbered, *args)  # type: ignore[no-any-return]


class EngineReads:
    """Hot reads on SQLite through an autocommit SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._engine.dispose()

    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        async with self._engine.connect() as connection:
            return (await connection.execute(text(sql), dict(params))).first()

    async def fetch_all(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        async with self._engine.connect() as connection:
            return (await connection.execute(text(sql), dict(params))).all()


def create_reads(settings: Settings) -> Reads:
    if settings.is_postgres:
        dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        return AsyncpgReads(dsn, settings.db_pool_size)
    from tocsin_server.db.engine import create_read_engine  # noqa: PLC0415

    return EngineReads(create_read_engine(settings))
