"""Reading a Prometheus scrape the way Prometheus does: through ``prometheus_client``'s own parser."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """One scrape's samples: ``scrape.value("tocsin_trigger_events_total", outcome="applied")``."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    content_type: str

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for a labelled child not yet created (a counter that never moved)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def scrape(url: str) -> Scrape:
    """GET ``url`` (a ``/metrics`` endpoint) on a new connection and parse its exposition."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return Scrape(samples, response.headers["content-type"])
