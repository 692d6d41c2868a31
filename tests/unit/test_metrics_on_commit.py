"""A service's count lands when its transaction commits, never when it rolls back, and a savepoint's commit is not
the transaction's; the write pool is read when scraped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tocsin_server import metrics
from tocsin_server.db.transactions import create_sessionmaker


@pytest.fixture
async def engine(tmp_path: object) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/count.db")
    yield engine
    await engine.dispose()


class Things:
    """A counter of its own, read the way a scrape reads it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counter = Counter("tocsin_test_things", "things", registry=self.registry)

    @property
    def count(self) -> float | None:
        return self.registry.get_sample_value("tocsin_test_things_total")


async def test__counted_on_commit__not_before(engine: AsyncEngine) -> None:
    things = Things()
    async with create_sessionmaker(engine)() as session, session.begin():
        metrics.count_on_commit(session, things.counter, 3)
        await session.execute(text("SELECT 1"))
        assert things.count == 0  # still inside the transaction
    assert things.count == 3


async def test__a_rollback_forgets_the_count(engine: AsyncEngine) -> None:
    things = Things()
    with pytest.raises(RuntimeError):
        async with create_sessionmaker(engine)() as session, session.begin():
            metrics.count_on_commit(session, things.counter)
            raise RuntimeError
    assert things.count == 0
    async with create_sessionmaker(engine)() as session, session.begin():  # nothing left over for the next one
        pass
    assert things.count == 0


async def test__a_savepoint_commit_waits_for_the_outer_one(engine: AsyncEngine) -> None:
    things = Things()
    with pytest.raises(RuntimeError):
        async with create_sessionmaker(engine)() as session, session.begin():
            metrics.count_on_commit(session, things.counter)
            async with session.begin_nested():
                await session.execute(text("SELECT 1"))
            assert things.count == 0
            raise RuntimeError
    assert things.count == 0


async def test__the_pool_is_read_at_scrape_time(engine: AsyncEngine) -> None:
    metrics.track_pool(engine)
    registry = metrics.REGISTRY
    size = engine.sync_engine.pool.size()  # type: ignore[attr-defined]
    assert registry.get_sample_value("tocsin_db_pool_size") == size
    async with engine.connect():
        assert registry.get_sample_value("tocsin_db_pool_checked_out") == 1
    assert registry.get_sample_value("tocsin_db_pool_checked_out") == 0
