"""OpenTelemetry traces of the API server (``TOCSIN_OTEL``; the ``otel`` extra; docs/operations.md, Traces).

Off, ``tracing_plugins`` gives no plugin: the app gets no middleware and this module imports no OpenTelemetry.
On:
- a SERVER span per request, from Litestar's OpenTelemetry plugin (opentelemetry-instrumentation-asgi), which
  joins the caller's trace through its W3C ``traceparent`` header. The plugin wraps the app outside routing, so
  the span starts named by the method alone; ``_NameByOperation``, inside routing, renames it to the route's
  operationId and records ``http.route``;
- a CLIENT span per statement on each SQLAlchemy engine (opentelemetry-instrumentation-sqlalchemy), a child of
  the request's span;
- the SDK configured from the standard ``OTEL_*`` variables by opentelemetry-distro's configurator (exporter,
  service name, resource, sampler), once per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from tocsin_wire.otel import MISSING_EXTRA, otel_installed

from tocsin_server.config import ConfigError
from tocsin_server.db.reads import EngineReads

if TYPE_CHECKING:
    from litestar.config.app import AppConfig
    from litestar.plugins import InitPluginProtocol
    from litestar.types import ASGIApp, Receive, Scope, Send
    from sqlalchemy.ext.asyncio import AsyncEngine

    from tocsin_server.config import Settings
    from tocsin_server.db.reads import Reads

__all__ = ["tracing_plugins"]

_NEEDED: Final = (
    "opentelemetry.sdk",
    "opentelemetry.distro",
    "opentelemetry.instrumentation.asgi",
    "opentelemetry.instrumentation.sqlalchemy",
)


def tracing_plugins(settings: Settings, engine: AsyncEngine, reads: Reads) -> list[InitPluginProtocol]:
    """The app's tracing plugins: none when ``TOCSIN_OTEL`` is off. The hot reads on PostgreSQL go to asyncpg
    directly, past SQLAlchemy, and get no span of their own (docs/operations.md)."""
    if not settings.otel:
        return []
    if not otel_installed(_NEEDED):
        raise ConfigError(MISSING_EXTRA)
    if (problem := _configure_sdk()) is not None:
        raise ConfigError(problem)
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin  # noqa: PLC0415

    engines = [engine, reads.engine] if isinstance(reads, EngineReads) else [engine]
    config = OpenTelemetryConfig(
        scope_span_details_extractor=_method_only,
        exclude_spans=["receive", "send"],  # one span per ASGI message is noise, not news
    )
    return [OpenTelemetryPlugin(config), _ServerTracing(engines)]


def _configure_sdk() -> str | None:
    """Configure the SDK from the standard ``OTEL_*`` variables (opentelemetry-distro's configurator, as
    ``opentelemetry-instrument`` does), unless this process has a tracer provider already (it runs under
    ``opentelemetry-instrument``, or a test set one). Returns what is wrong, in one line, or None.

    ``OTEL_TRACES_EXPORTER`` unset means OTLP over HTTP (the specification's default protocol, and the exporter
    the extra ships). ``tocsin_client._tracing.configure_sdk`` does the same for the triggerer: the sides share
    no code but the leaf, and the leaf imports no OpenTelemetry.
    """
    import os  # noqa: PLC0415

    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.distro import OpenTelemetryConfigurator  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    if not os.environ.get("OTEL_TRACES_EXPORTER"):
        os.environ["OTEL_TRACES_EXPORTER"] = "otlp"
        os.environ.setdefault("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    try:
        OpenTelemetryConfigurator().configure()  # type: ignore[no-untyped-call]  # the distro has no annotations
    except (RuntimeError, ValueError) as exc:  # an exporter or sampler the variables name that cannot be had
        return f"OTEL_TRACES_EXPORTER={os.environ['OTEL_TRACES_EXPORTER']!r} (TOCSIN_OTEL is on): {exc}"
    return None


def _method_only(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The span's first name, before routing: the method (the semantic conventions' name without a route)."""
    return str(scope.get("method", "HTTP")), {}


class _ServerTracing:
    """Adds the renaming middleware and instruments the engines for the app's lifetime."""

    def __init__(self, engines: list[AsyncEngine]) -> None:
        self._engines = engines

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor  # noqa: PLC0415

        instrumentor = SQLAlchemyInstrumentor()

        def instrument(_: object) -> None:
            instrumentor.instrument(engines=[engine.sync_engine for engine in self._engines])

        def uninstrument(_: object) -> None:  # the instrumentor is process-wide: the next app starts afresh
            instrumentor.uninstrument()

        app_config.middleware.insert(0, _NameByOperation)
        app_config.on_startup.append(instrument)
        app_config.on_shutdown.append(uninstrument)
        return app_config


class _NameByOperation:
    """Names the request's span after the route's operationId (inside routing, where the route is known)."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry import trace  # noqa: PLC0415

        self._app = app
        self._current_span = trace.get_current_span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = self._current_span()
        operation = getattr(scope.get("route_handler"), "operation_id", None)
        if span.is_recording() and isinstance(operation, str):
            span.update_name(operation)
            span.set_attribute("http.route", scope.get("path_template", ""))
        await self._app(scope, receive, send)
