"""Settings read once from ``TOCSIN_*`` environment variables and validated at start."""

from __future__ import annotations

import functools
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, ParamSpec

from tocsin_wire.serde import parse_allowed
from tocsin_wire.settings import Env, SettingsError, load, yes_or_no

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./tocsin.db"
MIN_SECRET_BYTES = 32
STANDALONE_SECRET_FILE = "tocsin-jwt-secret"  # noqa: S105 - a file name, not a secret


_P = ParamSpec("_P")


class ConfigError(ValueError):
    """The configuration is invalid; the message says which variable and why."""


def reports_config_errors(prefix: str) -> Callable[[Callable[_P, int]], Callable[_P, int]]:
    """A command that raises ConfigError prints ``prefix: message`` as one line on stderr and exits 2."""

    def decorate(function: Callable[_P, int]) -> Callable[_P, int]:
        @functools.wraps(function)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> int:
            try:
                return function(*args, **kwargs)
            except ConfigError as exc:
                sys.stderr.write(f"{prefix}: {exc}\n")
                return 2

        return run

    return decorate


@dataclass(frozen=True, slots=True)
class Settings:
    """Server settings; each field names the ``TOCSIN_*`` variable that sets it (read by ``tocsin_wire.settings``)."""

    database_url: Annotated[str, Env("TOCSIN_DATABASE_URL")] = DEFAULT_DATABASE_URL
    """SQLAlchemy URL: ``sqlite+aiosqlite:///path`` (the default) or ``postgresql+asyncpg://…``."""
    jwt_secret: str = field(default="", repr=False)
    """HMAC secret that signs and verifies tokens (at least 32 bytes)."""
    jwt_issuer: Annotated[str, Env("TOCSIN_JWT_ISSUER")] = "tocsin"
    """``iss`` claim of issued tokens, required on verification."""
    jwt_audience: Annotated[str, Env("TOCSIN_JWT_AUDIENCE")] = "tocsin"
    """``aud`` claim of issued tokens, required on verification."""
    jwt_keys_file: Annotated[str, Env("TOCSIN_JWT_KEYS_FILE")] = ""
    """The keyring file (``tocsin_server.signing_keys``): key ids → secrets, one signing; when set, the only source of
    keys (``TOCSIN_JWT_SECRET`` and its file are not read)."""
    jwt_keys_reload_s: Annotated[float, Env("TOCSIN_JWT_KEYS_RELOAD_S")] = 10.0
    """A running server looks at the keyring file at most once per this many seconds and re-reads it if it changed."""
    max_body_bytes: Annotated[int, Env("TOCSIN_MAX_BODY_BYTES")] = 1_048_576
    """Largest request body accepted; larger ones get 413."""
    db_pool_size: Annotated[int, Env("TOCSIN_DB_POOL_SIZE")] = 10
    """Connections per server process for the hot read path and for ORM sessions, each."""
    read_cache_size: Annotated[int, Env("TOCSIN_READ_CACHE_SIZE")] = 4096
    """PostgreSQL: answers of the runtime reads (variables, connections, XComs) each server process keeps, least
    recently used out first, invalidated across replicas by LISTEN/NOTIFY; 0 turns the cache off. Unused on SQLite."""
    heartbeat_interval_s: Annotated[float, Env("TOCSIN_HEARTBEAT_INTERVAL_S")] = 5.0
    """Seconds between triggerer heartbeats (told to triggerers when they register)."""
    liveness_threshold_s: Annotated[float, Env("TOCSIN_LIVENESS_THRESHOLD_S")] = 30.0
    """Seconds without a heartbeat after which a job's triggers go to others."""
    max_capacity: Annotated[int, Env("TOCSIN_MAX_CAPACITY")] = 1_000_000
    """Cap on the capacity a triggerer may request (the contract's own maximum: one triggerer host holds a million
    idle triggers, docs/benchmarks.md)."""
    max_claims_per_call: Annotated[int, Env("TOCSIN_MAX_CLAIMS_PER_CALL")] = 1000
    """At most this many new triggers go to one job per ``load`` call, so several triggerers share the work."""
    job_token_ttl_s: Annotated[float, Env("TOCSIN_JOB_TOKEN_TTL_S")] = 7 * 86400.0
    """Lifetime of the job-scoped token a registered triggerer gets (refreshed through a response header)."""
    ti_token_ttl_s: Annotated[float, Env("TOCSIN_TI_TOKEN_TTL_S")] = 900.0
    """Lifetime of a task-instance token carried by a workload (refreshed through a response header)."""
    max_event_payload_bytes: Annotated[int, Env("TOCSIN_MAX_EVENT_PAYLOAD_BYTES")] = 262_144
    """Largest event payload (or XCom set of a terminal event) accepted; larger ones get 413."""
    trigger_kwargs_keys: Annotated[tuple[str, ...], Env("TOCSIN_TRIGGER_KWARGS_KEYS", parse=_comma_separated)] = field(
        default=(), repr=False
    )
    """Fernet keys (comma-separated in the variable) that encrypt trigger kwargs at rest; the first encrypts."""
    cleanup_interval_s: Annotated[float, Env("TOCSIN_CLEANUP_INTERVAL_S")] = 10.0
    """Unused triggers are deleted at most once per this interval, server-wide."""
    timeout_check_interval_s: Annotated[float, Env("TOCSIN_TIMEOUT_CHECK_INTERVAL_S")] = 5.0
    """How often the server fails deferrals whose trigger_timeout passed and reaps dead jobs."""
    retention: Annotated[bool, Env("TOCSIN_RETENTION", parse=yes_or_no)] = True
    """Whether the retention duty runs (deleting the old rows the windows below name)."""
    retention_interval_s: Annotated[float, Env("TOCSIN_RETENTION_INTERVAL_S")] = 3600.0
    """The retention duty runs at most once per this interval, server-wide."""
    retention_batch_size: Annotated[int, Env("TOCSIN_RETENTION_BATCH_SIZE")] = 1000
    """Rows deleted per short transaction by the retention duty."""
    retention_events_s: Annotated[float, Env("TOCSIN_RETENTION_EVENTS_S")] = 30 * 86400.0
    """Trigger event records (event idempotency) older than this, with nothing deferred on their trigger, go;
    keep it longer than any redelivery of an event."""
    retention_asset_events_s: Annotated[float, Env("TOCSIN_RETENTION_ASSET_EVENTS_S")] = 30 * 86400.0
    """Asset events older than this are deleted."""
    retention_logs_s: Annotated[float, Env("TOCSIN_RETENTION_LOGS_S")] = 14 * 86400.0
    """Trigger log lines older than this are deleted."""
    retention_assignments_s: Annotated[float, Env("TOCSIN_RETENTION_ASSIGNMENTS_S")] = 86400.0
    """Assignment rows of a job that is not running and last beat longer ago than this are deleted."""
    retention_changes_s: Annotated[float, Env("TOCSIN_RETENTION_CHANGES_S")] = 7 * 86400.0
    """Task-instance change log entries (the watch feed's history) older than this are deleted."""
    watch_bookmark_s: Annotated[float, Env("TOCSIN_WATCH_BOOKMARK_S")] = 10.0
    """A watch stream (``watchTaskInstanceChanges`` as SSE or NDJSON) without changes sends a bookmark this often."""
    watch_max_streams: Annotated[int, Env("TOCSIN_WATCH_MAX_STREAMS")] = 1000
    """Watch streams one server process holds open at most; one more is answered 429 with ``Retry-After``."""
    allowed_deserialization_classes: Annotated[
        tuple[str, ...], Env("TOCSIN_ALLOWED_DESERIALIZATION_CLASSES", parse=parse_allowed)
    ] = ()
    """Glob patterns of the classes an asset watcher's event payload may name (``TOCSIN_ALLOWED_DESERIALIZATION_CLASSES``,
    separated by spaces or commas). Builtin serde types always decode; nothing else is ever imported."""
    max_log_line_bytes: Annotated[int, Env("TOCSIN_MAX_LOG_LINE_BYTES")] = 16_384
    """A shipped trigger log line longer than this is cut to this size (and marked truncated)."""
    host: Annotated[str, Env("TOCSIN_HOST")] = "127.0.0.1"
    """The address ``api-server`` and ``standalone`` listen on (``--host``)."""
    port: Annotated[int, Env("TOCSIN_PORT")] = 8080
    """The port they listen on (``--port``)."""
    workers: Annotated[int, Env("TOCSIN_WORKERS")] = 1
    """Server processes of ``api-server`` (``--workers``)."""
    standalone_capacity: Annotated[int, Env("TOCSIN_STANDALONE_CAPACITY")] = 10_000
    """The capacity of the triggerer ``standalone`` runs (``--capacity``)."""
    otel: Annotated[bool, Env("TOCSIN_OTEL", parse=yes_or_no)] = False
    """OpenTelemetry traces (the ``otel`` extra; exporter and service name from the standard ``OTEL_*`` variables)."""

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def validate(self) -> Settings:
        if self.trigger_kwargs_keys and (problem := _fernet_key_problem(self.trigger_kwargs_keys)) is not None:
            msg = f"TOCSIN_TRIGGER_KWARGS_KEYS: {problem}; make one with: tocsin key create"
            raise ConfigError(msg)
        if (problem := _database_url_problem(self.database_url)) is not None:
            raise ConfigError(f"TOCSIN_DATABASE_URL: {problem}")
        if not self.jwt_keys_file and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            msg = (
                f"TOCSIN_JWT_SECRET (or TOCSIN_JWT_SECRET_FILE) must hold at least {MIN_SECRET_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
            raise ConfigError(msg)
        for name in (
            "max_body_bytes",
            "db_pool_size",
            "max_capacity",
            "max_claims_per_call",
            "max_event_payload_bytes",
            "max_log_line_bytes",
            "retention_batch_size",
            "watch_max_streams",
        ):
            if getattr(self, name) < 1:
                msg = f"TOCSIN_{name.upper()} must be at least 1"
                raise ConfigError(msg)
        if self.read_cache_size < 0:
            msg = "TOCSIN_READ_CACHE_SIZE must be 0 (off) or more"
            raise ConfigError(msg)
        if not 0 < self.heartbeat_interval_s < self.liveness_threshold_s:
            msg = "TOCSIN_HEARTBEAT_INTERVAL_S must be positive and below TOCSIN_LIVENESS_THRESHOLD_S"
            raise ConfigError(msg)
        for name in (
            "job_token_ttl_s",
            "ti_token_ttl_s",
            "jwt_keys_reload_s",
            "cleanup_interval_s",
            "timeout_check_interval_s",
            "retention_interval_s",
            "retention_events_s",
            "retention_asset_events_s",
            "retention_logs_s",
            "retention_assignments_s",
            "watch_bookmark_s",
        ):
            if not getattr(self, name) > 0:
                msg = f"TOCSIN_{name.upper()} must be positive"
                raise ConfigError(msg)
        return self

    def with_secret(self, secret: str) -> Settings:
        return replace(self, jwt_secret=secret)


def _fernet_key_problem(keys: tuple[str, ...]) -> str | None:
    """The problem with ``keys``, if any, for a configuration error message."""
    from cryptography.fernet import Fernet  # noqa: PLC0415 - only when keys are configured

    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            return f"key {index + 1} is not a Fernet key (32 url-safe base64-encoded bytes)"
    return None


_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def _database_url_problem(raw: str) -> str | None:
    """What is wrong with a database URL as written (its driver, its form); None when tocsin can use it.

    Parsed by SQLAlchemy (imported here only: this module stays cheap to import for the triggerer).
    """
    from sqlalchemy.engine import make_url  # noqa: PLC0415
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    usable = "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
    try:
        url = make_url(raw)
    except ArgumentError:
        return f"{raw!r} is not a database URL: {usable}"
    shown = url.render_as_string(hide_password=True)
    backend, _, driver = url.drivername.partition("+")
    wanted = _ASYNC_DRIVERS.get(backend)
    if wanted is None:
        return f"{shown!r} is a {backend} URL, a database tocsin does not support: {usable}"
    if url.drivername != wanted:
        fixed = url.set(drivername=wanted).render_as_string(hide_password=True)
        named = f"the {driver} driver" if driver else "no driver (so a synchronous one)"
        return f"{shown!r} names {named}; tocsin needs {wanted.partition('+')[2]}: use {fixed}"
    if backend == "sqlite" and not url.database:
        return f"{shown!r} names no SQLite file: use sqlite+aiosqlite:///PATH (e.g. sqlite+aiosqlite:///./tocsin.db)"
    return None


def _comma_separated(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def resolve_secret(env: Mapping[str, str], cwd: Path | None = None) -> tuple[str, str]:
    """The signing secret and where it came from, for every command alike: ``TOCSIN_JWT_SECRET``, else the file
    ``TOCSIN_JWT_SECRET_FILE`` names, else the ``./tocsin-jwt-secret`` that ``tocsin standalone`` keeps in its
    folder. ``("", "")`` when there is none."""
    if secret := env.get("TOCSIN_JWT_SECRET"):
        return secret, "TOCSIN_JWT_SECRET"
    if path := env.get("TOCSIN_JWT_SECRET_FILE"):
        try:
            return Path(path).read_text().strip(), f"TOCSIN_JWT_SECRET_FILE={path}"
        except OSError as exc:
            msg = f"TOCSIN_JWT_SECRET_FILE={path!r} cannot be read: {exc.strerror}"
            raise ConfigError(msg) from None
    standalone = (cwd or Path.cwd()) / STANDALONE_SECRET_FILE
    try:
        return standalone.read_text().strip(), f"./{STANDALONE_SECRET_FILE}"
    except FileNotFoundError:
        return "", ""
    except OSError as exc:
        msg = f"./{STANDALONE_SECRET_FILE} (the standalone's secret) cannot be read: {exc.strerror}"
        raise ConfigError(msg) from None


def _check_secret(secret: str, source: str) -> None:
    if not source:
        msg = (
            "no signing secret: set TOCSIN_JWT_SECRET (at least 32 bytes) or TOCSIN_JWT_SECRET_FILE, or run this in "
            f"the folder where `tocsin standalone` keeps ./{STANDALONE_SECRET_FILE}; generate one with: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
        raise ConfigError(msg)
    if (size := len(secret.encode())) < MIN_SECRET_BYTES:
        msg = (
            f"{source} holds a secret of {size} bytes; it needs at least {MIN_SECRET_BYTES}; generate one with: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
        raise ConfigError(msg)


def load_settings(
    env: Mapping[str, str] | None = None, *, require_secret: bool = True, **overrides: object
) -> Settings:
    """Read the settings from the environment (``overrides``: flags, which win when not None); raise ConfigError
    with a clear message when invalid."""
    env = os.environ if env is None else env
    try:
        settings = load(Settings, env, **overrides)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    if settings.jwt_keys_file:  # a keyring: the secrets are its keys, checked here so a mistake is one line at start
        if require_secret:
            from tocsin_server.signing_keys import read_keyring  # noqa: PLC0415 - it imports this module

            read_keyring(Path(settings.jwt_keys_file))
        return settings.validate()
    secret, source = resolve_secret(env)
    if require_secret:
        _check_secret(secret, source)
    settings = settings.with_secret(secret)
    if not require_secret and len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
        settings = settings.with_secret("x" * MIN_SECRET_BYTES)  # only for commands that sign nothing
    return settings.validate()


def ensure_secret_file(path: Path) -> str:
    """Return the secret stored at ``path``, creating it (mode 0600) when absent. Used by ``standalone``."""
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret
