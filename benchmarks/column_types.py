"""advanced-alchemy's GUID/DateTimeUTC against tocsin_server.db.types, side by side in one process.

    pip install advanced-alchemy==1.12.0   # no longer a dependency: only this comparison needs it
    python -m benchmarks.column_types [--rounds 5]

Two measures, in alternating rounds so both sides see the same machine. Each round is timed in CPU time of this
process (``time.process_time``: a round that waits for a core shared with other work is not charged for it) and
the best round counts (interference only ever adds time):
1. per row: the bind + result processors SQLAlchemy runs for one UUID and one time value, per dialect;
2. per read: ``session.get`` of one task instance through the ORM (the runtime GET's database step), on a
   migrated SQLite file and a PostgreSQL database, with the table mapped once with each set of types.
Small on purpose (a few seconds): the figures are recorded in docs/architecture.md, "Persistence".
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import Integer, String, TypeDecorator
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tocsin_server.db import models as m
from tocsin_server.db.types import STORED_UUID, UtcDateTime

from harness.databases import postgres_database, sqlite_database

ROWS = 2_000
GETS = 40
TI = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff")
WHEN = datetime(2026, 11, 30, 12, 15, 16, 123456, tzinfo=UTC)


def _processors(type_: Any, dialect: Dialect, value: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any], Any]:
    """The bind and result processors as SQLAlchemy runs them (identity when a type has none)."""
    bind = type_._cached_bind_processor(dialect) or (lambda v: v)
    result = type_._cached_result_processor(dialect, None) or (lambda v: v)
    return bind, result, bind(value)


def _per_row_ns(type_: Any, dialect: Dialect, value: Any, stored: Any) -> float:
    bind, result, _ = _processors(type_, dialect, value)
    started = time.process_time_ns()
    for _ in range(ROWS):
        bind(value)
        result(stored)
    return (time.process_time_ns() - started) / ROWS


def _stored(dialect: Dialect, kind: str) -> Any:
    """What the driver hands back for the column (what result processors start from)."""
    if kind == "uuid":
        return TI if dialect.name == "postgresql" else TI.bytes
    return WHEN if dialect.name == "postgresql" else WHEN.replace(tzinfo=None).isoformat(" ")


def per_row(rounds: int) -> list[tuple[str, float, float]]:
    dialects: list[Dialect] = [SQLiteDialect_aiosqlite(), PGDialect_asyncpg()]  # type: ignore[no-untyped-call]
    rows = []
    for dialect in dialects:
        for kind, old, new, value in (
            ("uuid", GUID(), STORED_UUID, TI),
            ("time", DateTimeUTC(timezone=True), UtcDateTime(), WHEN),
        ):
            stored = _stored(dialect, kind)
            olds, news = [], []
            for _ in range(rounds):
                olds.append(_per_row_ns(old, dialect, value, stored))
                news.append(_per_row_ns(new, dialect, value, stored))
            rows.append((f"{dialect.name} {kind} bind+result", min(olds), min(news)))
    return rows


def _mapping(uuid_type: Any, time_type: type[TypeDecorator[datetime]]) -> type[Any]:
    class Base(DeclarativeBase):
        pass

    class TaskInstance(Base):
        __tablename__ = "task_instance"
        id: Mapped[uuid.UUID] = mapped_column(uuid_type, primary_key=True)
        dag_id: Mapped[str] = mapped_column(String(250))
        run_id: Mapped[str] = mapped_column(String(250))
        task_id: Mapped[str] = mapped_column(String(250))
        map_index: Mapped[int] = mapped_column(Integer)
        state: Mapped[str] = mapped_column(String(20))
        trigger_timeout: Mapped[datetime | None] = mapped_column(time_type(timezone=True))
        updated_at: Mapped[datetime] = mapped_column(time_type(timezone=True))

    return TaskInstance


async def _gets_us(url: str, rounds: int) -> tuple[float, float]:
    old, new = _mapping(GUID, DateTimeUTC), _mapping(STORED_UUID, UtcDateTime)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO dag_run (dag_id, run_id, state, created_at) VALUES ('d', 'r', 'running', CURRENT_TIMESTAMP)"
            )
        async with AsyncSession(engine) as session:
            session.add(m.TaskInstance(id=TI, dag_id="d", run_id="r", task_id="t", state="deferred", updated_at=WHEN))
            await session.commit()

        async def gets(mapped: type[Any]) -> float:
            started = time.process_time()
            for _ in range(GETS):
                async with AsyncSession(engine) as session:  # a session per request, as the API has
                    row = await session.get(mapped, TI)
                    assert row is not None and row.updated_at == WHEN
            return (time.process_time() - started) / GETS * 1e6

        await gets(old), await gets(new)  # warm: statement caches, connections
        olds, news = [], []
        for _ in range(rounds):
            olds.append(await gets(old))
            news.append(await gets(new))
        return min(olds), min(news)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    print("| measure | advanced-alchemy 1.12 | tocsin_server.db.types | change |")
    print("|---|---:|---:|---:|")
    for name, old, new in per_row(rounds):
        print(f"| {name} (ns/row) | {old:.0f} | {new:.0f} | {(new - old) / old:+.0%} |")
    with tempfile.TemporaryDirectory() as folder, sqlite_database(Path(folder)) as sqlite_url:
        old, new = asyncio.run(_gets_us(sqlite_url, rounds))
        print(f"| SQLite: ORM get of a task instance (µs) | {old:.0f} | {new:.0f} | {(new - old) / old:+.0%} |")
    with postgres_database() as pg_url:
        old, new = asyncio.run(_gets_us(pg_url, rounds))
        print(f"| PostgreSQL: ORM get of a task instance (µs) | {old:.0f} | {new:.0f} | {(new - old) / old:+.0%} |")


if __name__ == "__main__":
    main()
