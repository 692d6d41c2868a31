"""``TriggererConfig``: every setting of a triggerer, read once from flags or ``TOCSIN_*`` environment variables."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Mapping
from typing import Final

from tocsin_client import serde
from tocsin_client.generated.operations import API_VERSION

__all__ = ["BUILTIN_ALLOWED", "ConfigError", "TriggererConfig"]

BUILTIN_ALLOWED: Final = ("tocsin_client.*",)
_HOSTNAME: Final = re.compile(r"[^A-Za-z0-9.\-]")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A setting is missing or out of range."""


def _hostname() -> str:
    name = _HOSTNAME.sub("-", socket.gethostname()).lstrip(".-")[:253]
    return name or "localhost"


def _flag(variable: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    msg = f"{variable}={raw!r}: use one of {', '.join(sorted(_TRUE | _FALSE))}"
    raise ConfigError(msg)


@dataclasses.dataclass(frozen=True, slots=True)
class TriggererConfig:
    """How one triggerer runs."""

    api_url: str
    """Where the API server listens, e.g. ``http://localhost:8080``."""
    token: str
    """A token with the ``triggerer`` scope; it only registers the job, whose own token does the rest."""
    capacity: int = 1000
    """How many triggers to ask for; the server may grant fewer."""
    runners: int = 1
    """Runner processes (event loops) the triggers are spread over."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (off when None)."""
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a scrape target listens on every interface by convention
    """The address the metrics server binds."""
    api_version: str = API_VERSION
    """The dated API version pinned on every request."""
    allowed_classes: tuple[str, ...] = ()
    """Glob patterns of classes trigger kwargs may decode to, besides ``tocsin_client.*``."""
    cycle_interval_s: float = 1.0
    """Seconds between two claim cycles when nothing new arrived."""
    grace_period_s: float = 30.0
    """On SIGTERM: how long to deliver what is queued before completing the job."""
    runner_health_threshold_s: float = 30.0
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
    exit_on_lost_lease: bool = False
    """When the server says the job's lease ended (409): exit with code 3 instead of registering a new job and
    carrying on (for process managers that prefer to restart it)."""
    hostname: str = dataclasses.field(default_factory=_hostname)
    """Sent at registration."""

    @property
    def allowed(self) -> tuple[str, ...]:
        """Every allowed deserialization pattern."""
        return BUILTIN_ALLOWED + self.allowed_classes

    def validate(self) -> TriggererConfig:
        """Raise ``ConfigError`` naming every bad setting; return self when all are good."""
        problems = []
        if not self.api_url.startswith(("http://", "https://")):
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
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> TriggererConfig:
        """Settings from ``TOCSIN_*`` variables; ``overrides`` (flags) win when not None."""
        values: dict[str, object] = {"api_url": env.get("TOCSIN_API_URL", ""), "token": env.get("TOCSIN_TOKEN", "")}
        numbers = {
            "capacity": ("TOCSIN_TRIGGERER_CAPACITY", int),
            "runners": ("TOCSIN_TRIGGERER_RUNNERS", int),
            "metrics_port": ("TOCSIN_TRIGGERER_METRICS_PORT", int),
            "grace_period_s": ("TOCSIN_TRIGGERER_GRACE_PERIOD", float),
            "runner_health_threshold_s": ("TOCSIN_TRIGGERER_RUNNER_HEALTH_THRESHOLD", float),
            "cycle_interval_s": ("TOCSIN_TRIGGERER_CYCLE_INTERVAL", float),
        }
        for field, (variable, kind) in numbers.items():
            if raw := env.get(variable):
                try:
                    values[field] = kind(raw)
                except ValueError as exc:
                    msg = f"{variable}={raw!r}: {exc}"
                    raise ConfigError(msg) from exc
        if raw := env.get("TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE"):
            values["exit_on_lost_lease"] = _flag("TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE", raw)
        if raw := env.get("TOCSIN_ALLOWED_DESERIALIZATION_CLASSES"):
            values["allowed_classes"] = serde.parse_allowed(raw)
        values.update({key: value for key, value in overrides.items() if value is not None})
        try:
            return cls(**values).validate()  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc
