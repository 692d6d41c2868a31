"""The HTTP request metrics: a count by operation and status, and a latency histogram by operation.

Two pieces, because an error raised by a middleware (a 401 from the bearer check, a 404 for a version that lacks
the route) is answered by the app's exception handler outside every middleware: the first middleware (the request
log's, ``web/request_log.py``: one layer for both, each layer costs) notes when a request reached its route with
``mark_started``, and the ``before_send`` hook ``record_response`` sees every response start, those answers
included, with its status, which it leaves in the scope for the request's log line (``status_sent``). A request no route matched (a router 404 or 405) is
counted as operation ``unmatched``, without a latency (it never reached a route). The operation is the route's
``operationId`` (the handler's name for the few routes outside the contract, such as ``/metrics``): never the
raw path, so the label set stays as small as the API.

Per request, in one process: a clock read, two dict lookups and three additions to plain numbers, turned into
metric families only when scraped (``prometheus_client``'s own counters take a lock and a few checks per
increment: some 4 µs a request, benchmarks/metrics_overhead.py). Every request runs on the event loop's thread,
and so does the scrape, so the tallies need no lock. With several workers the increments must reach the shared
files at once, so each request goes through ``prometheus_client``'s labelled children instead.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, cast

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tocsin_server import metrics

if TYPE_CHECKING:
    from litestar.types import Message, Scope

__all__ = ["mark_started", "record_response", "status_sent"]

_STARTED: Final = "tocsin.started"
_STATUS: Final = "tocsin.status"
UNMATCHED: Final = "unmatched"
_BOUNDS: Final = metrics.HTTP_BUCKETS
_go_float: Callable[[float], str] = floatToGoString  # the package leaves it untyped
_LE: Final = [_go_float(bound) for bound in (*_BOUNDS, float("inf"))]
"""The bounds as Prometheus writes them (``0.001``, ``+Inf``)."""

_counts: dict[tuple[str, int], int] = {}
"""One process: (operation, status) → requests answered."""
_latency: dict[str, list[float]] = {}
"""One process: operation → observations per bucket (the last one above every bound: +Inf), then their sum."""
_children: dict[tuple[str, int], tuple[Any, Any]] = {}
"""Several processes: (operation, status) → the labelled children (``labels()`` validates and locks per call)."""


def mark_started(scope: Scope, now: float) -> None:
    """Note ``now`` (``time.perf_counter()``) as the moment the request reached its route: the latency's start."""
    cast("dict[str, Any]", scope)[_STARTED] = now


def status_sent(scope: Scope) -> int | None:
    """The status of the response started for this request, if one has."""
    status: int | None = cast("dict[str, Any]", scope).get(_STATUS)
    return status


def operation_of(handler: object) -> str:
    """The bounded label naming the route ``handler`` serves."""
    if handler is None:
        return UNMATCHED
    operation_id = getattr(handler, "operation_id", None)
    if isinstance(operation_id, str):
        return operation_id
    # Outside the contract: the route's own name where it has one (the docs assets, whose handlers Litestar names
    # get_handler/head_handler), else the handler's (get_metrics, docs, openapi_json, Litestar's options_handler).
    name = getattr(handler, "name", None)
    return name if isinstance(name, str) and name else str(getattr(handler, "handler_name", UNMATCHED))


def _tally(operation: str, status: int, seconds: float | None) -> None:
    key = (operation, status)
    _counts[key] = _counts.get(key, 0) + 1
    if seconds is not None:
        observed = _latency.get(operation)
        if observed is None:
            observed = _latency[operation] = [0.0] * (len(_BOUNDS) + 2)
        observed[bisect_left(_BOUNDS, seconds)] += 1  # the first bound >= seconds: Prometheus's "le"
        observed[-1] += seconds


def _shared(operation: str, status: int, seconds: float | None) -> None:
    found = _children.get((operation, status))
    if found is None:
        found = _children[operation, status] = (
            metrics.HTTP_REQUESTS.labels(operation, str(status)),
            None if operation == UNMATCHED else metrics.HTTP_DURATION.labels(operation),  # no route: no latency
        )
    count, duration = found
    count.inc()
    if seconds is not None and duration is not None:
        duration.observe(seconds)


class _TalliesCollector(Collector):
    """One process's tallies as the two metric families, at scrape time."""

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "tocsin_http_requests", metrics.HTTP_REQUESTS_HELP, labels=["operation", "status"]
        )
        for (operation, status), answered in sorted(_counts.items()):
            requests.add_metric([operation, str(status)], answered)
        yield requests
        latency = HistogramMetricFamily(
            "tocsin_http_request_duration_seconds", metrics.HTTP_DURATION_HELP, labels=["operation"]
        )
        for operation, observed in sorted(_latency.items()):
            cumulative, buckets = 0.0, []
            for le, count in zip(_LE, observed, strict=False):  # the sum, last, is no bucket
                cumulative += count
                buckets.append((le, cumulative))
            latency.add_metric([operation], buckets, sum_value=observed[-1])
        yield latency


_record: Final[Callable[[str, int, float | None], None]] = _shared if metrics.MULTIPROCESS else _tally
if not metrics.MULTIPROCESS:
    metrics.REGISTRY.register(_TalliesCollector())


async def record_response(message: Message, scope: Scope) -> None:
    """``before_send`` hook: count the response when its headers go out."""
    if message["type"] != "http.response.start":
        return
    extended = cast("dict[str, Any]", scope)
    status = extended[_STATUS] = message["status"]
    started = extended.get(_STARTED)
    _record(
        operation_of(extended.get("route_handler")), status, None if started is None else time.perf_counter() - started
    )
