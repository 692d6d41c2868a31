"""Prometheus metrics of a triggerer, read from its counters at scrape time (nothing is updated per event).

Served by ``prometheus_client``'s own HTTP server on ``--metrics-port``; imported only when a port is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tocsin_client.triggerer.supervisor import Triggerer

__all__ = ["TriggererCollector", "serve_metrics"]

_P = "tocsin_triggerer_"


class TriggererCollector(Collector):
    """Turns a ``Triggerer``'s state into metric families."""

    def __init__(self, triggerer: Triggerer) -> None:
        self._triggerer = triggerer

    def collect(self) -> Iterator[Any]:
        """One sample of every metric."""
        t = self._triggerer
        stats = t.stats
        yield GaugeMetricFamily(f"{_P}held_triggers", "Triggers the server says this job holds.", value=stats.held)
        yield GaugeMetricFamily(f"{_P}running_triggers", "Trigger coroutines running.", value=t.running)
        queue = GaugeMetricFamily(f"{_P}queue_depth", "Items waiting to be sent.", labels=["queue"])
        queue.add_metric(["events_and_failures"], len(t._outbox))
        queue.add_metric(["logs"], len(t._logs))
        yield queue
        yield CounterMetricFamily(f"{_P}events_sent", "Events the server accepted.", value=stats.events_sent)
        yield CounterMetricFamily(f"{_P}failures_sent", "Failures the server accepted.", value=stats.failures_sent)
        yield CounterMetricFamily(
            f"{_P}trigger_failures", "Triggers that failed (build, raise, no event).", value=stats.trigger_failures
        )
        yield CounterMetricFamily(f"{_P}delivery_retries", "Transient delivery failures.", value=stats.delivery_retries)
        yield CounterMetricFamily(
            f"{_P}delivery_rejected", "Events or failures the server refused for good.", value=stats.delivery_rejected
        )
        yield CounterMetricFamily(f"{_P}conflicts", "409s: triggers another job holds now.", value=stats.conflicts)
        yield CounterMetricFamily(
            f"{_P}quarantined", "Triggers that killed their runner too often.", value=stats.quarantined
        )
        yield CounterMetricFamily(
            f"{_P}leases_lost", "Leases that ended (a new job registered).", value=stats.leases_lost
        )
        errors = CounterMetricFamily(f"{_P}api_errors", "Failed API calls.", labels=["operation"])
        for operation, count in sorted(stats.api_errors.items()):
            errors.add_metric([operation], count)
        yield errors
        yield CounterMetricFamily(f"{_P}blocked_loop", "Times a trigger blocked its loop.", value=t.pool.blocked_total)
        yield CounterMetricFamily(f"{_P}log_lines_dropped", "Log lines dropped.", value=stats.log_lines_dropped)
        lag = GaugeMetricFamily(
            f"{_P}loop_lag_seconds", "How late the runner loop's last pulse was.", labels=["runner"]
        )
        for index, seconds in t.pool.lags().items():
            lag.add_metric([str(index)], seconds)
        yield lag
        age = stats.heartbeat_age_s
        yield GaugeMetricFamily(
            f"{_P}heartbeat_age_seconds", "Seconds since the last accepted heartbeat.", value=-1 if age is None else age
        )
        yield GaugeMetricFamily(f"{_P}healthy", "1 while every runner loop makes progress.", value=int(stats.healthy))


def serve_metrics(triggerer: Triggerer, host: str, port: int) -> Any:
    """Serve ``/metrics`` in a daemon thread; returns the server (``.shutdown()`` stops it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TriggererCollector(triggerer))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
