"""``TriggererConfig``: every setting of a triggerer, read once from flags or ``TOCSIN_*`` environment variables."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Mapping
from typing import Annotated, Final

from tocsin_wire.otel import MISSING_EXTRA, otel_installed
from tocsin_wire.settings import Env, SettingsError, load, yes_or_no

from tocsin_client import serde

__all__ = ["BUILTIN_ALLOWED", "ConfigError", "TriggererConfig"]

BUILTIN_ALLOWED: Final = ("tocsin_client.*",)
_HOSTNAME: Final = re.compile(r"[^A-Za-z0-9.\-]")
_OTEL_MODULES: Final = ("opentelemetry.sdk", "opentelemetry.distro", "opentelemetry.instrumentation.httpx")
"""What ``tocsin_client._tracing`` imports from the ``otel`` extra."""


class ConfigError(ValueError):
    """A setting is missing or out of range."""


def _hostname() -> str:
    name = _HOSTNAME.sub("-", socket.gethostname()).lstrip(".-")[:253]
    return name or "localhost"


@dataclasses.dataclass(frozen=True, slots=True)
class TriggererConfig:
    """How one triggerer runs."""

    api_url: Annotated[str, Env("TOCSIN_API_URL")] = ""
    """Where the API server listens, e.g. ``http://localhost:8080``."""
    token: Annotated[str, Env("TOCSIN_TOKEN")] = dataclasses.field(default="", repr=False)
    """A token with the ``triggerer`` scope; it only registers the job, whose own token does the rest."""
    capacity: Annotated[int, Env("TOCSIN_TRIGGERER_CAPACITY")] = 1000
    """How many triggers to ask for; the server may grant fewer."""
    runners: Annotated[int, Env("TOCSIN_TRIGGERER_RUNNERS")] = 1
    """Runner processes (event loops) the triggers are spread over."""
    metrics_port: Annotated[int | None, Env("TOCSIN_TRIGGERER_METRICS_PORT")] = None
    """Serve Prometheus metrics on this port (off when None)."""
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a scrape target listens on every interface by convention
    """The address the metrics server binds."""
    allowed_classes: Annotated[
        tuple[str, ...], Env("TOCSIN_ALLOWED_DESERIALIZATION_CLASSES", parse=serde.parse_allowed)
    ] = ()
    """Glob patterns of classes trigger kwargs may decode to, besides ``tocsin_client.*``."""
    cycle_interval_s: Annotated[float, Env("TOCSIN_TRIGGERER_CYCLE_INTERVAL")] = 1.0
    """Seconds between two claim cycles when nothing new arrived."""
    grace_period_s: Annotated[float, Env("TOCSIN_TRIGGERER_GRACE_PERIOD")] = 30.0
    """On SIGTERM: how long to deliver what is queued before completing the job."""
    runner_health_threshold_s: Annotated[float, Env("TOCSIN_TRIGGERER_RUNNER_HEALTH_THRESHOLD")] = 30.0
    """A runner loop silent for this long makes the triggerer stop heartbeating (0 disables the check)."""
    cleanup_interval_s: float = 15.0
    """Seconds between two cleanup calls (the server also rate-limits them)."""
    delivery_concurrency: int = 32
    """Events and failures in flight at once."""
    retry_base_s: float = 0.25
    """First retry delay of a transient delivery failure; doubles per attempt, jittered."""
    retry_max_s: float = 5.0
    """Longest retry delay."""
    log_buffer_lines: int = 10_000
    """Per-trigger log lines held for shipping; past this the oldest are dropped and counted."""
    block_threshold_s: float = 0.2
    """The watchdog names a trigger that blocks its loop for longer than this."""
    exit_on_lost_lease: Annotated[bool, Env("TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE", parse=yes_or_no)] = False
    """When the server says the job's lease ended (409): exit with code 3 instead of registering a new job and
    carrying on (for process managers that prefer to restart it)."""
    otel: Annotated[bool, Env("TOCSIN_OTEL", parse=yes_or_no)] = False
    """OpenTelemetry traces of the API calls (the ``otel`` extra; exporter from the standard ``OTEL_*`` variables)."""
    hostname: str = dataclasses.field(default_factory=_hostname)
    """Sent at registration."""

    @property
    def allowed(self) -> tuple[str, ...]:
        """Every allowed deserialization pattern."""
        return BUILTIN_ALLOWED + self.allowed_classes

    def validate(self) -> TriggererConfig:
        """Raise ``ConfigError`` naming every bad setting; return self when all are good."""
        problems = []
        if not self.api_url:
            problems.append("api_url is required (--api-url or TOCSIN_API_URL)")
        elif not self.api_url.startswith(("http://", "https://")):
            problems.append(f"api_url {self.api_url!r} must start with http:// or https://")
        if not self.token:
            problems.append("a token is required (--token or TOCSIN_TOKEN)")
        if not 1 <= self.capacity <= 1_000_000:
            problems.append(f"capacity {self.capacity} must be between 1 and 1000000")
        if not 1 <= self.runners <= 256:
            problems.append(f"runners {self.runners} must be between 1 and 256")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            problems.append(f"metrics port {self.metrics_port} is not a port")
        for name in ("cycle_interval_s", "retry_base_s", "retry_max_s", "block_threshold_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.grace_period_s < 0 or self.runner_health_threshold_s < 0:
            problems.append("grace_period_s and runner_health_threshold_s must not be negative")
        if problems:
            raise ConfigError("; ".join(problems))
        if self.otel and not otel_installed(_OTEL_MODULES):
            raise ConfigError(MISSING_EXTRA)
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> TriggererConfig:
        """Settings from ``TOCSIN_*`` variables (the one loader, ``tocsin_wire.settings``); ``overrides`` (flags)
        win when not None."""
        try:
            return load(cls, env, **overrides).validate()
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
