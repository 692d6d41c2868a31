"""One process's plain request tallies expose exactly what prometheus_client's own histogram and counter would."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram
from tocsin_server import metrics
from tocsin_server.web import request_metrics

# on a bound, between bounds, below the first, above the last
DURATIONS = (0.0005, 0.001, 0.0011, 0.0025, 0.07, 1.0, 9.99, 10.0, 10.5, 3600.0)


def samples(collected: object, operation: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in collected  # type: ignore[attr-defined]
        for sample in family.samples
        if sample.labels.get("operation") == operation and not sample.name.endswith("_created")
    }


def test__the_tallies_match_prometheus_clients_own_metrics() -> None:
    operation = f"tallyTest{uuid.uuid4().hex}"
    registry = CollectorRegistry()
    requests = Counter("tocsin_http_requests", "h", ["operation", "status"], registry=registry)
    latency = Histogram(
        "tocsin_http_request_duration_seconds", "h", ["operation"], buckets=metrics.HTTP_BUCKETS, registry=registry
    )
    for index, seconds in enumerate(DURATIONS):
        status = 200 if index % 3 else 404
        request_metrics._tally(operation, status, seconds)
        requests.labels(operation, str(status)).inc()
        latency.labels(operation).observe(seconds)
    request_metrics._tally(operation, 401, None)  # answered without a latency: counted, not observed
    requests.labels(operation, "401").inc()

    ours = samples(request_metrics._TalliesCollector().collect(), operation)
    theirs = samples(registry.collect(), operation)
    assert ours == theirs
    assert ("tocsin_http_request_duration_seconds_count", (("operation", operation),), len(DURATIONS)) in ours
