"""Plain counters the supervisor keeps; the metrics exporter reads them at scrape time."""

from __future__ import annotations

import dataclasses
import time

__all__ = ["Stats"]


@dataclasses.dataclass(slots=True)
class Stats:
    """What a triggerer has done so far."""

    held: int = 0
    events_sent: int = 0
    failures_sent: int = 0
    trigger_failures: int = 0
    delivery_retries: int = 0
    delivery_rejected: int = 0
    conflicts: int = 0
    leases_lost: int = 0
    quarantined: int = 0
    api_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    log_lines_shipped: int = 0
    log_lines_dropped: int = 0
    last_heartbeat: float | None = None
    healthy: bool = True
    fire_to_sent_s: list[float] = dataclasses.field(default_factory=list)

    def api_error(self, operation: str) -> None:
        """Count one failed call of ``operation``."""
        self.api_errors[operation] = self.api_errors.get(operation, 0) + 1

    @property
    def heartbeat_age_s(self) -> float | None:
        """Seconds since the last heartbeat the server accepted."""
        return None if self.last_heartbeat is None else time.monotonic() - self.last_heartbeat

    def event_sent(self, fired_at: float) -> None:
        """Count an event the server accepted and keep its fire-to-delivered latency (the newest, bounded)."""
        self.events_sent += 1
        self.fire_to_sent_s.append(time.time() - fired_at)
        if len(self.fire_to_sent_s) > 10_000:
            del self.fire_to_sent_s[:5_000]
