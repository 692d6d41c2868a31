"""The hot runtime reads, one round trip each and no ORM session.

DESIGN.md section 7: an ORM session per request costs ~780 µs here; an asyncpg pool without its reset
query ~90 µs. So on PostgreSQL these queries go straight to an asyncpg pool, and on SQLite through an
autocommit connection. The SQL is written once with ``:name`` parameters.
"""

from __future__ import annotations

import asyncio
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


class _ConnectionLostError(Exception):
    """The connection died under a read (its cause is the driver's error)."""


def _is_statement_error(exc: BaseException) -> bool:
    """The server rejected the statement and the connection is still good (not lost or shut down)."""
    import asyncpg  # noqa: PLC0415

    return isinstance(exc, asyncpg.PostgresError) and not isinstance(
        exc, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
    )


class AsyncpgReads:
    """Hot reads on PostgreSQL over a fixed set of asyncpg connections.

    Not ``asyncpg.Pool``: its release path shields a new task and runs a reset query on every request
    (~40 µs here, benchmarks/). Reads are single autocommit statements, so a connection carries no session
    state between requests. A connection whose read was cancelled or lost is dropped and reopened on its next
    use, so a half-finished protocol exchange is never handed to another request.
    """

    def __init__(self, dsn: str, size: int, *, application_name: str = "") -> None:
        self._dsn = dsn
        self._server_settings = {"application_name": application_name} if application_name else {}
        self._idle: asyncio.Queue[asyncpg.Connection[Any] | None] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(None)  # opened on first use
        self._open: set[asyncpg.Connection[Any]] = set()
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    async def start(self) -> None:
        connection = await self._connect()  # fail fast on a bad DSN
        await self._idle.get()
        self._idle.put_nowait(connection)

    async def stop(self) -> None:
        for connection in list(self._open):
            await connection.close()
        self._open.clear()

    async def _connect(self) -> asyncpg.Connection[Any]:
        import asyncpg  # noqa: PLC0415 - the PostgreSQL extra is optional

        connection: asyncpg.Connection[Any] = await asyncpg.connect(self._dsn, server_settings=self._server_settings)
        self._open.add(connection)
        return connection

    def _args(self, sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        compiled = self._compiled.get(sql)
        if compiled is None:
            compiled = self._compiled[sql] = to_numbered(sql)
        numbered, names = compiled
        return numbered, [params[name] for name in names]

    async def _run(self, sql: str, params: Mapping[str, Any], *, many: bool) -> Any:
        numbered, args = self._args(sql, params)
        try:
            return await self._once(numbered, args, many=many)
        except _ConnectionLostError:
            # A kept connection can die while idle (server restart, pg_terminate_backend): reads are
            # idempotent, so try once more on a fresh connection before answering with an error.
            try:
                return await self._once(numbered, args, many=many, fresh=True)
            except _ConnectionLostError as lost:
                assert lost.__cause__ is not None
                raise lost.__cause__ from None

    async def _once(self, numbered: str, args: list[Any], *, many: bool, fresh: bool = False) -> Any:
        connection = await self._idle.get()
        try:
            if fresh and connection is not None:
                # the others may have died with the one that failed: retry on a new connection
                self._open.discard(connection)
                connection.terminate()
                connection = None
            if connection is None or connection.is_closed():
                connection = await self._connect()
            if many:
                return await connection.fetch(numbered, *args)
            return await connection.fetchrow(numbered, *args)
        except BaseException as exc:
            # Keep the connection only when the server answered the statement with an error; after anything
            # else (cancelled mid-exchange, lost, a protocol state asyncpg itself refuses) it is not safe to
            # hand to another request.
            if _is_statement_error(exc):
                raise
            if connection is not None:
                self._open.discard(connection)
                connection.terminate()
                connection = None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _ConnectionLostError from exc
        finally:
            self._idle.put_nowait(connection)

    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await self._run(sql, params, many=False)
        return row

    async def fetch_all(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await self._run(sql, params, many=True)
        return rows


class EngineReads:
    """Hot reads on SQLite through an autocommit SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        """The read engine (for its tracing instrumentation)."""
        return self._engine

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
        from tocsin_server.db.engine import application_name  # noqa: PLC0415

        dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        return AsyncpgReads(dsn, settings.db_pool_size, application_name=application_name())
    from tocsin_server.db.engine import create_read_engine, sqlite_file_uri  # noqa: PLC0415

    uri = sqlite_file_uri(settings.database_url)
    if uri is not None:
        from tocsin_server.db.sqlite_reads import LoopSqliteReads  # noqa: PLC0415

        return LoopSqliteReads(uri, threads=settings.db_pool_size)
    return EngineReads(create_read_engine(settings))  # in memory, or a URI the operator wrote: as it is
