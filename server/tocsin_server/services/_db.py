"""Small helpers shared by services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tocsin_server.errors import ConflictError

if TYPE_CHECKING:
    from sqlalchemy import Table
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
