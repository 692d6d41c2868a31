"""One transaction per writing request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from tocsin_server.db.health import DatabaseHealth


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions of their own class, so hooks the services attach to it (the change log) stay on this engine's."""
    session_class = type("TocsinSession", (Session,), {})
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=session_class)


def create_write_gate(*, sqlite: bool) -> AbstractAsyncContextManager[object]:
    """What a request's transaction enters first.

    SQLite: a FIFO lock. Every SQLite transaction here is ``BEGIN IMMEDIATE`` (one writer at a time), and
    SQLite lets waiting writers poll with growing sleeps, first come not first served: under a steady stream
    of writes one request could lose the race for seconds. Queueing in the process first makes the database
    lock uncontended and the wait fair. PostgreSQL: no gate, its row locks let writers run side by side.
    """
    return asyncio.Lock() if sqlite else contextlib.nullcontext()


async def provide_transaction(state: State) -> AsyncGenerator[AsyncSession, None]:
    """A session inside one transaction, committed after the handler returns and before the response is
    sent, so a failed commit is an error answer rather than a lost write. An exception in the handler is
    thrown in here and rolls the transaction back."""
    sessionmaker: async_sessionmaker[AsyncSession] = state.sessionmaker
    gate: AbstractAsyncContextManager[object] = state.write_gate
    health: DatabaseHealth = state.database_health
    health.guard()  # a deleted SQLite file: 503 before a write lands in it (or in a new empty one)
    async with gate, sessionmaker() as session, session.begin():
        yield session
