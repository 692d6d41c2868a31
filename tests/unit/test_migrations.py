"""Migrations: the models and the migrations agree, and every migration goes down and up again."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from tocsin_server.db import migrate
from tocsin_server.db.models import Base
from tocsin_server.db.types import compare_type_in_migration


def _drift(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:

                def compare(sync: Connection) -> list[object]:
                    context = MigrationContext.configure(sync, opts={"compare_type": compare_type_in_migration})
                    return list(compare_metadata(context, Base.metadata))

                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.usefixtures("clean_database")
def test__models_match_the_migrations(database_url: str) -> None:
    assert _drift(database_url) == []


def test__downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    migrate.downgrade(database_url, "base")
    assert migrate.current(database_url) is None
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head_revision()
