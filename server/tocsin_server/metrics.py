"""The API server's Prometheus metrics: the counters domain services increment, and the scrape.

Services know nothing of HTTP; they count what they did through ``count_on_commit``, which applies the increment
only when the session's transaction commits (a rolled-back claim or event never counts). The HTTP request metrics
are recorded by ``tocsin_server.web.request_metrics``; ``/metrics`` is served by ``tocsin_server.api.metrics``.

With several worker processes (``tocsin api-server --workers N``) the metrics use ``prometheus_client``'s
multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts (``commands.api_server`` makes a
private one), every process writes its values to files there, and whichever worker answers a scrape sums them all.
The mode is chosen by ``prometheus_client`` when it is first imported, from that variable, so it is read here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import choose_encoder
from sqlalchemy import event
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
    from sqlalchemy.orm import SessionTransaction

__all__ = [
    "ASSET_EVENTS_REFUSED",
    "DUTY_RUNS",
    "EVENTS",
    "EVENTS_APPLIED",
    "EVENTS_DUPLICATE",
    "EVENTS_REFUSED",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "JOBS_REAPED",
    "READ_CACHE_MISSES",
    "TIMEOUTS",
    "TRIGGERS_CLAIMED",
    "count_on_commit",
    "exposition",
    "track_pool",
    "worker_stopped",
]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS: Final = MULTIPROC_ENV in os.environ
"""Whether this process writes its values to files shared with the other workers (see the module docstring)."""

REGISTRY: Final = CollectorRegistry()
"""The server's own metrics; the process-wide default registry stays untouched."""

TRIGGERS_CLAIMED: Final = Counter(
    "tocsin_triggers_claimed", "Triggers assigned to a triggerer job by a claim.", registry=REGISTRY
)
EVENTS: Final = Counter(
    "tocsin_trigger_events",
    "Trigger events submitted, by outcome: applied, duplicate (already applied: answered as before), refused.",
    ["outcome"],
    registry=REGISTRY,
)
EVENTS_APPLIED: Final = EVENTS.labels("applied")
EVENTS_DUPLICATE: Final = EVENTS.labels("duplicate")
EVENTS_REFUSED: Final = EVENTS.labels("refused")
"""Made once: each outcome is exposed (at 0) from the start, and ``labels()`` is not paid per batch."""
ASSET_EVENTS_REFUSED: Final = Counter(
    "tocsin_asset_events_refused",
    "Asset events an asset watcher refused: the payload named a class outside the allowlist or did not decode.",
    registry=REGISTRY,
)
JOBS_REAPED: Final = Counter(
    "tocsin_jobs_reaped", "Triggerer jobs marked failed because their heartbeats stopped.", registry=REGISTRY
)
TIMEOUTS: Final = Counter(
    "tocsin_trigger_timeouts",
    "Deferred task instances failed because their trigger_timeout passed.",
    registry=REGISTRY,
)
DUTY_RUNS: Final = Counter(
    "tocsin_duty_runs",
    "Periodic duty runs this server won (one replica runs a duty per interval), by duty.",
    ["duty"],
    registry=REGISTRY,
)
READ_CACHE_MISSES: Final = Counter(
    "tocsin_read_cache_misses",
    "Runtime reads (getVariable, getConnection, getXCom) the read cache sent to the database, by reason: miss (not"
    " cached), off (the LISTEN connection is down, so nothing is served from the cache). The rest were hits.",
    ["reason"],
    registry=REGISTRY,
)
HTTP_REQUESTS_HELP: Final = (
    "HTTP requests answered, by operation (the route's operationId; 'unmatched' for no route) and status code."
)
HTTP_DURATION_HELP: Final = "Seconds from a request reaching its route to its response headers, by operation."
HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_REQUESTS: Final = Counter("tocsin_http_requests", HTTP_REQUESTS_HELP, ["operation", "status"], registry=None)
HTTP_DURATION: Final = Histogram(
    "tocsin_http_request_duration_seconds", HTTP_DURATION_HELP, ["operation"], buckets=HTTP_BUCKETS, registry=None
)
"""Written by several worker processes only (their files are what a scrape sums); one process keeps its own
tallies, cheaper per request (``tocsin_server.web.request_metrics``)."""
POOL_CHECKED_OUT: Final = Gauge(
    "tocsin_db_pool_checked_out",
    "Write-pool database connections in use (summed over live worker processes).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
POOL_SIZE: Final = Gauge(
    "tocsin_db_pool_size",
    "Write-pool connections kept open at most, overflow aside (summed over live worker processes).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

_mark_process_dead: Callable[[int], None] = _multiprocess.mark_process_dead  # the package leaves it untyped
_multiprocess_collector: Callable[[CollectorRegistry], object] = _multiprocess.MultiProcessCollector

_PENDING: Final = "tocsin_metrics_pending"
_WORKER_FILE: Final = "tocsin-worker-{pid}.pid"


def count_on_commit(session: AsyncSession | Session, counter: Any, amount: float = 1) -> None:
    """Increment ``counter`` (a metric or one labelled child) by ``amount`` once ``session`` commits; forgotten
    if it rolls back. Count outside savepoints only: a savepoint's rollback does not forget it."""
    if amount:
        session.info.setdefault(_PENDING, []).append((counter, amount))


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the outer transaction may still roll back
    for counter, amount in session.info.pop(_PENDING, ()):
        counter.inc(amount)


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)  # rolled back (a commit took them already)


def track_pool(engine: AsyncEngine) -> None:
    """Report the write pool. One process: read from the pool at scrape time, nothing per request. Several: each
    checkout and checkin moves this process's share (a scrape cannot read another process's pool)."""
    sync_engine = engine.sync_engine

    def size() -> int:
        pool: Any = sync_engine.pool  # read each time: dispose() replaces the pool
        return int(pool.size()) if hasattr(pool, "size") else 1  # in-memory SQLite: one shared connection

    def checked_out() -> int:
        pool: Any = sync_engine.pool
        return int(pool.checkedout()) if hasattr(pool, "checkedout") else 0

    if not MULTIPROCESS:
        POOL_SIZE.set_function(size)
        POOL_CHECKED_OUT.set_function(checked_out)
        return
    _register_worker()
    POOL_SIZE.set(size())
    event.listen(sync_engine, "checkout", lambda *_: POOL_CHECKED_OUT.inc())
    event.listen(sync_engine, "checkin", lambda *_: POOL_CHECKED_OUT.dec())


def _directory() -> Path:
    return Path(os.environ[MULTIPROC_ENV])


def _register_worker() -> None:
    """Leave this process's id in the shared folder, so a scrape can tell when it died (see ``_forget_dead``)."""
    (_directory() / _WORKER_FILE.format(pid=os.getpid())).touch()


def worker_stopped() -> None:
    """This worker stops: its live gauges leave the sums (its counters stay, as counters must)."""
    if MULTIPROCESS:
        _mark_process_dead(os.getpid())
        (_directory() / _WORKER_FILE.format(pid=os.getpid())).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead() -> None:
    """Workers that died without stopping (killed, crashed) and were replaced: drop their live gauges."""
    for marker in _directory().glob(_WORKER_FILE.format(pid="*")):
        pid = marker.stem.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            _mark_process_dead(int(pid))
            marker.unlink(missing_ok=True)


def exposition(accept: str) -> tuple[bytes, str]:
    """The scrape, in the format the ``Accept`` header asks for (Prometheus text or OpenMetrics, negotiated by
    ``prometheus_client`` as its own server does), and its content type. Several processes: all of them summed."""
    encode, content_type = choose_encoder(accept)
    if not MULTIPROCESS:
        return encode(REGISTRY), content_type
    _forget_dead()
    registry = CollectorRegistry()
    _multiprocess_collector(registry)
    return encode(registry), content_type
