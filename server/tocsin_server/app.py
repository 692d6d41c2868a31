"""The Litestar application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from tocsin_server import __version__, metrics
from tocsin_server.api import (
    asset_watchers,
    connections,
    dag_runs,
    health,
    jobs,
    schema,
    task_instances,
    trigger_logs,
    triggers,
    variables,
    xcoms,
)
from tocsin_server.api import (
    changes as changes_route,
)
from tocsin_server.api import metrics as metrics_route
from tocsin_server.api.changes import StreamSlots
from tocsin_server.db.cipher import KwargsCipher
from tocsin_server.db.engine import create_write_engine
from tocsin_server.db.health import DatabaseHealth
from tocsin_server.db.reads import create_reads
from tocsin_server.db.transactions import create_sessionmaker, create_write_gate, provide_transaction
from tocsin_server.services import changes, read_invalidation
from tocsin_server.services.change_notices import ChangeNotices
from tocsin_server.services.maintenance import periodic_loop
from tocsin_server.services.read_cache import ReadCache
from tocsin_server.web.allow_header import complete_allow_header
from tocsin_server.web.auth import BearerAuthMiddleware
from tocsin_server.web.draining import on_drain
from tocsin_server.web.json_limits import JsonBodyGuard
from tocsin_server.web.problems import EXCEPTION_HANDLERS
from tocsin_server.web.request_log import RequestLogMiddleware
from tocsin_server.web.request_metrics import record_response
from tocsin_server.web.tokens import TokenAuthority
from tocsin_server.web.tracing import tracing_plugins
from tocsin_server.web.versioning import LATEST, ApiVersionMiddleware, echo_version

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tocsin_server.config import Settings

ROUTERS: Final = (
    health.router,
    connections.router,
    variables.router,
    xcoms.router,
    changes_route.router,  # before task_instances: /task-instances/changes is no task instance id
    task_instances.router,
    dag_runs.router,
    jobs.router,
    triggers.router,
    trigger_logs.router,
    asset_watchers.router,
    schema.router,
    metrics_route.router,
)
"""One router per API module; each module lists its own operations. The version an operation appeared in is
declared once, in ``tocsin_server.web.versioning.VERSION_CHANGES``, not on its handler."""


def create_app(settings: Settings, *, live_schema: bool = False, periodic_duties: bool = True) -> Litestar:
    """Build the app. ``live_schema=True`` makes Litestar generate its own schema (the contract gate's
    "live schema"); the published contract is always the hand-written file. ``periodic_duties`` runs the
    server-wide duties (timeouts, dead jobs, cleanup) in the background; every replica may run them."""
    reads = create_reads(settings)
    authority = TokenAuthority.for_settings(settings)
    engine = create_write_engine(settings)
    metrics.track_pool(engine)
    sessionmaker = create_sessionmaker(engine)
    notices = ChangeNotices(
        settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1) if settings.is_postgres else None
    )
    # every task-instance state change is logged in its own transaction; its commit wakes this process's watchers
    changes.track(sessionmaker, on_commit=notices.notify)
    cache = read_cache(settings, notices)
    # every write of a cached row names it in its transaction; its end forgets it here, before the response
    read_invalidation.track(sessionmaker, on_end=cache.invalidate)
    health = DatabaseHealth(settings, reads)

    async def database_away(exc: Exception) -> bool:
        """A failed periodic round while the database is away is that outage's news, already logged once."""
        return health.down is not None or await health.probe() is not None

    @asynccontextmanager
    async def databases(_: Litestar) -> AsyncIterator[None]:
        await reads.start()
        health.start()
        await notices.start()
        undrain = on_drain(notices.close)  # the HTTP server is stopping: end the watch streams it would wait for
        duties = (
            asyncio.create_task(periodic_loop(sessionmaker, settings, explained=database_away))
            if periodic_duties
            else None
        )
        if gc.get_freeze_count() == 0:
            # What startup built (modules, the app, its schemas and compiled statements) lives as long as the
            # process: frozen, no collection walks it again. Without this, the collector's full passes, triggered by
            # what a bulk request allocates, walked it over and over: a fifth of the server's time under bulk
            # events. Once per process (the first app's startup): a test process builds many apps.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if duties is not None:
                duties.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await duties
            undrain()
            await notices.stop()
            await health.stop()
            await reads.stop()
            await engine.dispose()
            metrics.worker_stopped()

    return Litestar(
        route_handlers=list(ROUTERS),
        dependencies={"db_session": Provide(provide_transaction)},
        middleware=[
            RequestLogMiddleware(),  # outermost: its duration covers the others; it starts the latency metric too
            ApiVersionMiddleware(),
            BearerAuthMiddleware(authority),
            JsonBodyGuard(),
        ],
        before_send=[echo_version, complete_allow_header, record_response],
        exception_handlers=EXCEPTION_HANDLERS,
        after_exception=[health.after_exception],
        lifespan=[databases],
        plugins=tracing_plugins(settings, engine, reads),  # none unless TOCSIN_OTEL is on
        state=State(
            {
                "reads": reads,
                "sessionmaker": sessionmaker,
                "write_gate": create_write_gate(sqlite=settings.is_sqlite),
                "database_health": health,
                "settings": settings,
                "authority": authority,
                "kwargs_cipher": KwargsCipher(settings.trigger_kwargs_keys),
                "dialect": "postgresql" if settings.is_postgres else "sqlite",
                "change_notices": notices,
                "read_cache": cache,
                "watch_streams": StreamSlots(settings.watch_max_streams),
            }
        ),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="tocsin API", version=LATEST, path="/schema") if live_schema else None,
        debug=False,
        logging_config=None,
    )


def read_cache(settings: Settings, notices: ChangeNotices) -> ReadCache:
    """PostgreSQL: the process's cache of the runtime reads, serving only while the notices' LISTEN connection
    carries the other replicas' invalidations. SQLite: none (size 0): its reads run on the loop at ~10 µs each
    (db/sqlite_reads.py), and a second process on the same file would write unheard."""
    if not settings.is_postgres or settings.read_cache_size == 0:
        return ReadCache(0)
    cache = ReadCache(settings.read_cache_size)
    notices.subscribe(
        read_invalidation.CHANNEL,
        lambda payload: read_invalidation.invalidate_from(payload, cache),
        cache.set_live,
    )
    return cache


__all__ = ("__version__", "create_app")
