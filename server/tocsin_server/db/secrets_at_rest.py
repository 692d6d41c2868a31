"""Every stored secret, re-written in batches: the migration that encrypts existing rows and ``tocsin key rotate``.

Each batch reads a page of values in key order and writes back only the ones that change, each update guarded by
the value it read (compare-and-set), so a value a running server rewrites meanwhile is never overwritten with a
stale one. With ``commit`` given, each batch is its own transaction: no long locks on a live database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SECRET_COLUMNS: Final = (
    ("trigger", "id", "kwargs"),
    ("connection", "conn_id", "password"),
    ("connection", "conn_id", "extra"),
    ("variable", "key", "value"),
)
"""(table, primary key, column) of every value the cipher seals."""
CONNECTION_AND_VARIABLE_COLUMNS: Final = SECRET_COLUMNS[1:]
BATCH_SIZE: Final = 500


def rewrite(
    connection: Connection,
    transform: Callable[[str], str],
    *,
    columns: tuple[tuple[str, str, str], ...] = SECRET_COLUMNS,
    batch_size: int = BATCH_SIZE,
    commit: Callable[[], None] | None = None,
) -> int:
    """Apply ``transform`` to every non-null value of ``columns``; return how many values changed."""
    changed = 0
    for table_name, key_name, column_name in columns:
        key: sa.ColumnClause[Any] = sa.column(key_name)
        value: sa.ColumnClause[str] = sa.column(column_name)
        table = sa.table(table_name, key, value)
        update = (
            sa.update(table)
            .where(key == sa.bindparam("k"), value == sa.bindparam("old"))
            .values({column_name: sa.bindparam("new")})
        )
        last: object = None
        while True:
            page = sa.select(key, value).where(value.is_not(None)).order_by(key).limit(batch_size)
            if last is not None:
                page = page.where(key > last)
            rows = connection.execute(page).all()
            updates = [{"k": k, "old": v, "new": new} for k, v in rows if (new := transform(v)) != v]
            if updates:
                connection.execute(update, updates)
                changed += len(updates)
            if commit is not None:
                commit()
            if len(rows) < batch_size:
                break
            last = rows[-1][0]
    return changed
