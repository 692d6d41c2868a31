"""Small helpers shared by services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from tocsin_server.errors import ConflictError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import DeclarativeBase


async def flush_or_conflict(session: AsyncSession, message: str, *, field: str) -> None:
    """Flush; a unique-key race lost to a concurrent request becomes a 409, not a 500."""
    try:
        await session.flush()
    except IntegrityError:
        raise ConflictError(message, field=field) from None


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
