"""Small helpers shared by services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import msgspec
from sqlalchemy import any_, bindparam, insert, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tocsin_server.errors import ConflictError

T = TypeVar("T")

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy import ColumnElement, Dialect, Executable, Table, TextClause
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import DeclarativeBase


async def insert_or_conflict(
    session: AsyncSession, model: type[DeclarativeBase], values: dict[str, Any], message: str, *, field: str
) -> Any:
    """Insert one row and return its primary key; a row with the same unique key (there before, or written by a
    concurrent request) is a 409.

    ``ON CONFLICT DO NOTHING``, never "flush and catch IntegrityError": a conflict is an expected answer, so no
    statement may fail for it. On SQLite a failed statement leaves the driver's cursor unclosed (SQLAlchemy's
    aiosqlite adapter skips the close when ``execute`` raises); the garbage collector finalizes it later, from
    whichever thread it runs in, while another request uses that connection, and that request's transaction
    never ends: it kept the write lock and every other writer waited 30 s for "database is locked" (issue 7).
    """
    table = model.__table__
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    keys = list(table.primary_key.columns)  # type: ignore[attr-defined]
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(*keys)  # type: ignore[arg-type]
    row = (await session.execute(statement)).first()
    if row is None:
        raise ConflictError(message, field=field)
    return row[0]


async def upsert(session: AsyncSession, model: type[DeclarativeBase], values: dict[str, Any]) -> None:
    """Insert or replace one row in one statement, so concurrent writers of one key never collide."""
    table = model.__table__
    keys = [column.name for column in table.primary_key.columns]  # type: ignore[attr-defined]
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).values(**values)  # type: ignore[arg-type]
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={name: statement.excluded[name] for name in values if name not in keys}
    )
    await session.execute(statement)


def table_of(model: type[DeclarativeBase]) -> Table:
    """A mapped class's table, for Core statements that skip the ORM's per-row work (a declarative model is
    always mapped to a ``Table``; SQLAlchemy types ``__table__`` as any ``FromClause``)."""
    return cast("Table", model.__table__)


def on_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


def by_dialect(build: Callable[[bool], T]) -> Callable[[AsyncSession], T]:
    """A statement built once per dialect (``build(postgres)``), for the hot paths: building a SQLAlchemy
    construct and its cache key on every call cost about as much CPU as executing it (a reused one memoizes
    its key). Its values go in as parameters at execution, e.g. a ``parameter_matches`` list."""
    built: dict[bool, T] = {}

    def for_session(session: AsyncSession) -> T:
        postgres = on_postgres(session)
        statement = built.get(postgres)
        if statement is None:
            statement = built[postgres] = build(postgres)
        return statement

    return for_session


def parameter_matches(column: Any, name: str, *, postgres: bool) -> ColumnElement[bool]:
    """``column IN :name`` with the list bound at execution, for ``by_dialect``; on PostgreSQL ``column = ANY(:name)``:
    one parameter however many values, so the statement is neither re-rendered nor re-planned per list length."""
    if postgres:
        return cast("ColumnElement[bool]", column == any_(bindparam(name, type_=ARRAY(column.type))))
    return cast("ColumnElement[bool]", column.in_(bindparam(name, expanding=True)))


_JSON: Final = msgspec.json.Encoder()


def recordset(dialect: Dialect, table: Table, columns: Sequence[str], parameter: str) -> str:
    """PostgreSQL: a FROM item reading the JSON array of objects bound to ``parameter`` as rows of ``columns``
    typed as in ``table``, with their place in the array as ``ordinal``.

    Many rows go in as one JSON text: msgspec writes it in one C call and PostgreSQL parses it, where one array
    per column made asyncpg inspect every element (in the bulk event profile, a fifth of the server's time)."""
    types = ", ".join(f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in columns)
    names = ", ".join(columns)
    return (
        f"ROWS FROM (json_to_recordset(CAST(:{parameter} AS json)) AS ({types}))"
        f" WITH ORDINALITY AS {parameter}({names}, ordinal)"
    )


def recordset_json(dialect: Dialect, table: Table, rows: Sequence[dict[str, Any]]) -> str:
    """The JSON text of ``rows`` for ``recordset``; each value passes its column type's bind processing first, as
    it would as a parameter (``UtcDateTime`` refuses a naive time and converts to UTC)."""
    columns = list(rows[0])
    processors = {
        name: processor
        for name in columns
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
    }
    if processors:
        rows = [{**row, **{name: process(row[name]) for name, process in processors.items()}} for row in rows]
    return _JSON.encode(rows).decode()


_RECORDSET_INSERTS: dict[tuple[str, tuple[str, ...]], TextClause] = {}


def _recordset_insert(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> TextClause:
    """``INSERT INTO table (columns) SELECT … FROM`` the rows of one JSON parameter, in their order."""
    statement = _RECORDSET_INSERTS.get((table.name, columns))
    if statement is None:
        names = ", ".join(columns)
        source = recordset(dialect, table, columns, "inserted")
        statement = text(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {source} ORDER BY ordinal")  # noqa: S608 - names from the model
        _RECORDSET_INSERTS[(table.name, columns)] = statement
    return statement


def rows_insert(dialect: Dialect, table: Table, rows: Sequence[dict[str, Any]]) -> tuple[Executable, Any]:
    """The statement and parameters inserting ``rows`` (non-empty, dicts with the same keys) in order, for a sync
    or async session alike: on PostgreSQL one statement reading them from one JSON parameter (``recordset``),
    elsewhere an executemany of the plain INSERT."""
    if dialect.name == "postgresql":
        statement = _recordset_insert(dialect, table, tuple(rows[0]))
        return statement, {"inserted": recordset_json(dialect, table, rows)}
    return insert(table), list(rows)


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in order: see ``rows_insert``."""
    if rows:
        await session.execute(*rows_insert(session.bind.dialect, table, rows))
