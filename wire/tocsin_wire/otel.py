"""The ``otel`` extra as the server and the triggerer both meet it: is it installed, and the SDK configured
from the standard ``OTEL_*`` variables.

At import, only the standard library: ``otel_installed`` asks without importing OpenTelemetry, and
``configure_sdk`` imports it when called, which only a process with ``TOCSIN_OTEL`` on does.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Final

__all__ = ["MISSING_EXTRA", "configure_sdk", "otel_installed"]

MISSING_EXTRA: Final = "TOCSIN_OTEL is on but OpenTelemetry is not installed: pip install 'tocsin[otel]'"
_NEEDED: Final = ("opentelemetry.sdk", "opentelemetry.instrumentation.httpx", "opentelemetry.distro")


def otel_installed(needed: tuple[str, ...] = _NEEDED) -> bool:
    """True when every module of the extra that this side uses can be imported."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in needed)
    except ModuleNotFoundError:  # a parent package (opentelemetry itself) is absent
        return False


def configure_sdk() -> str | None:
    """Configure the SDK from the standard ``OTEL_*`` variables (opentelemetry-distro's configurator, as
    ``opentelemetry-instrument`` does), unless this process has a tracer provider already (it runs under
    ``opentelemetry-instrument``, or a test set one). Returns what is wrong, in one line, or None.

    ``OTEL_TRACES_EXPORTER`` unset means OTLP over HTTP (the specification's default protocol, and the exporter
    the extra ships).
    """
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
