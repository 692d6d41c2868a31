"""OpenTelemetry traces of the triggerer (``TOCSIN_OTEL``; the ``otel`` extra; docs/operations.md, Traces).

Imported only when tracing is on; with it off the triggerer never loads OpenTelemetry. On:
- a CLIENT span per API call (opentelemetry-instrumentation-httpx on the job's client), named after the
  call's operationId (the request carries it as the ``tocsin.operation`` extension) and sending the W3C
  ``traceparent`` header, so the server's span for the request joins this trace;
- a ``trigger fire`` span per fired event, from the moment the trigger fired in its runner to the moment the
  supervisor queued the event. The call that delivers the event is its child: one trace shows the trigger
  firing, the event's request and, on the server, the task instance it resumes. A bulk call delivering several
  events is the child of the first one's fire and links to the others' (a span has one parent).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context, trace
from opentelemetry.distro import OpenTelemetryConfigurator
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.sdk.trace import TracerProvider

from tocsin_client._client import OPERATION_EXTENSION

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from tocsin_client._client import AsyncClient
    from tocsin_client.triggerer._frames import EventOut

__all__ = ["TriggererTracing", "configure_sdk"]

_SCOPE: Final = "tocsin.triggerer"
_LINKS: Final = context.create_key("tocsin.fired-links")
"""The fires, beyond the parent, that the next call delivers (a bulk call links to them)."""


def configure_sdk() -> str | None:
    """Configure the SDK from the standard ``OTEL_*`` variables (opentelemetry-distro's configurator, as
    ``opentelemetry-instrument`` does), unless this process has a tracer provider already (it runs under
    ``opentelemetry-instrument``, or a test set one). Returns what is wrong, in one line, or None.

    ``OTEL_TRACES_EXPORTER`` unset means OTLP over HTTP (the specification's default protocol, and the exporter
    the extra ships). The server's ``tocsin_server.web.tracing`` does the same: the sides share no code but the
    leaf, and the leaf imports no OpenTelemetry.
    """
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


async def _name_by_operation(span: trace.Span, request: RequestInfo) -> None:
    """Name the call's span after its operationId and link it to the other fires it delivers."""
    operation = (request.extensions or {}).get(OPERATION_EXTENSION)
    if not span.is_recording():
        return
    if isinstance(operation, str):
        span.update_name(operation)
        span.set_attribute("tocsin.operation", operation)
    links: Sequence[trace.SpanContext] = context.get_value(_LINKS) or ()  # type: ignore[assignment]
    for linked in links:
        span.add_link(linked)


class TriggererTracing:
    """The triggerer's spans, over the process's tracer provider (``configure_sdk``)."""

    def __init__(self) -> None:
        self._tracer = trace.get_tracer(_SCOPE)

    def instrument(self, client: AsyncClient) -> None:
        """A span per call of ``client`` (and of every client ``with_token`` makes from it: they share its pool)."""
        HTTPXClientInstrumentor.instrument_client(client._http, request_hook=_name_by_operation)

    def fired(self, event: EventOut) -> Context:
        """Record the fire of ``event`` (from its runner's clock to now); the context its delivery runs in."""
        span = self._tracer.start_span(
            "trigger fire",
            start_time=int(event.fired_at * 1e9),
            attributes={
                "tocsin.trigger_id": event.trigger_id,
                "tocsin.event_id": event.event_id,
                "tocsin.event_type": event.event_type,
            },
        )
        span.end()
        return trace.set_span_in_context(span)

    @contextlib.contextmanager
    def delivering(self, fires: Sequence[Any]) -> Iterator[None]:
        """The calls made inside are children of the first fire in ``fires`` and link to the others."""
        parent: Context | None = next((fire for fire in fires if fire is not None), None)
        if parent is None:
            yield
            return
        others = [trace.get_current_span(fire).get_span_context() for fire in fires if fire is not None]
        token = context.attach(context.set_value(_LINKS, tuple(others[1:]), parent))
        try:
            yield
        finally:
            context.detach(token)
