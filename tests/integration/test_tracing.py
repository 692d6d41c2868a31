"""OpenTelemetry traces (``TOCSIN_OTEL``), in one process: the app with tracing on, and the triggerer's outbox
delivering a fired event to it through an instrumented client, spans caught by the SDK's in-memory exporter.

One trace must show the fire, the event's call, the server's span for it and the database statements that
resume the task instance, each the child of the one before.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.plugins.opentelemetry import OpenTelemetryPlugin
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tocsin_client import AsyncClient, serde
from tocsin_client._tracing import TriggererTracing
from tocsin_client.generated.models import (
    DagRunBody,
    DeferredStateUpdate,
    JobRegistrationBody,
    RunningStateUpdate,
    TaskInstanceBody,
    TriggerLoadBody,
)
from tocsin_client.triggerer._frames import EventOut
from tocsin_client.triggerer._outbox import Outbox
from tocsin_client.triggerer._stats import Stats
from tocsin_server.app import create_app
from tocsin_server.config import Settings

Auth = Callable[..., dict[str, str]]


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (set once; ``configure_sdk`` then leaves it be) exporting to memory."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    memory.shutdown()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def _token(auth: Auth, *scopes: str) -> str:
    return auth(*scopes)["Authorization"].removeprefix("Bearer ")


def _apart(app: Litestar) -> Any:
    """``app`` run in a context of its own, as in another process: no span of the caller's is current there, so
    the server's span can join the trace only through the request's ``traceparent`` header."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.create_task(app(scope, receive, send), context=contextvars.Context())

    return asgi


class World:
    """The traced app, an admin client and a registered job's instrumented client, all in this event loop."""

    def __init__(self, app: Litestar, auth: Auth) -> None:
        # a transport each: instrumenting a client instruments its transport
        self.admin = AsyncClient(
            "http://testserver", token=_token(auth, "admin", "worker"), transport=httpx.ASGITransport(app=_apart(app))
        )
        self.triggerer = AsyncClient(
            "http://testserver", token=_token(auth, "triggerer"), transport=httpx.ASGITransport(app=_apart(app))
        )
        self.tracing = TriggererTracing()
        self.tracing.instrument(self.triggerer)

    async def deferred(self, count: int) -> list[tuple[Any, int]]:
        """``count`` task instances deferred on their own triggers, loaded by a new job: (ti id, trigger id)."""
        await self.admin.create_dag_run(DagRunBody(dag_id="traced", run_id="r1"))
        made = []
        for index in range(count):
            ti = await self.admin.create_task_instance(
                TaskInstanceBody(dag_id="traced", run_id="r1", task_id=f"t{index}")
            )
            await self.admin.update_task_instance_state(ti.id, RunningStateUpdate())
            body = DeferredStateUpdate(
                classpath="tocsin_client.triggers.builtins.TimeDeltaTrigger",
                trigger_kwargs=serde.serialize({"delta": timedelta(seconds=60)}),
                next_method="execute_complete",
            )
            deferred = await self.admin.update_task_instance_state(ti.id, body)
            made.append((ti.id, deferred.trigger_id))
        job = await self.triggerer.register_job(JobRegistrationBody(hostname="traced", pid=1, capacity=10))
        self.triggerer.token = job.token
        loaded = await self.triggerer.load_triggers(TriggerLoadBody())
        assert {trigger for _, trigger in made} <= set(loaded.trigger_ids)
        return made

    async def deliver(self, *events: EventOut) -> None:
        """Queue ``events`` in an outbox before its loop starts (so they go together), and wait for delivery."""
        outbox = Outbox(self.triggerer, Stats(), lambda *_: None, concurrency=1, tracing=self.tracing)
        for event in events:
            outbox.put_event(event)
        worker = asyncio.create_task(outbox.work())
        try:
            assert await outbox.drain(10.0), "the outbox did not deliver within 10 s"
        finally:
            worker.cancel()


@contextlib.asynccontextmanager
async def traced(settings: Settings, auth: Auth) -> AsyncIterator[World]:
    """The app with ``TOCSIN_OTEL`` on, started in this task (its lifespan must end in the task it began in)."""
    app = create_app(replace(settings, otel=True), periodic_duties=False)
    async with app.lifespan():
        world = World(app, auth)
        try:
            yield world
        finally:
            await world.admin.aclose()
            await world.triggerer.aclose()


def _event(trigger_id: int, event_id: str) -> EventOut:
    return EventOut(trigger_id, event_id, "resume", serde.serialize({"done": True}), fired_at=time.time() - 0.01)


def _one(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [span for span in spans if span.name == name and span.kind is kind]
    seen = [(span.name, span.kind.name) for span in spans]
    assert len(found) == 1, f"{len(found)} {kind.name} spans named {name!r} in {seen}"
    return found[0]


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _statement(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("db.statement") or attributes.get("db.query.text") or "")


async def test__fire_event_resume__are_one_trace_across_the_http_hop(
    settings: Settings, auth: Auth, spans: InMemorySpanExporter
) -> None:
    async with traced(settings, auth) as world:
        [(ti_id, trigger_id)] = await world.deferred(1)
        spans.clear()

        await world.deliver(_event(trigger_id, "ev-1"))

        assert (await world.admin.get_task_instance(ti_id)).state.value == "scheduled"  # the task resumed
        finished = list(spans.get_finished_spans())
        fire = _one(finished, "trigger fire", SpanKind.INTERNAL)
        call = _one(finished, "submitTriggerEvents", SpanKind.CLIENT)
        served = _one(finished, "submitTriggerEvents", SpanKind.SERVER)
        assert fire.attributes is not None and fire.attributes["tocsin.trigger_id"] == trigger_id
        assert fire.context is not None and call.context is not None and served.context is not None
        trace_id = fire.context.trace_id
        assert call.context.trace_id == trace_id and _parent_of(call) == fire.context.span_id
        # the traceparent header carried the trace over HTTP: the server's span is the call's child
        assert served.context.trace_id == trace_id and _parent_of(served) == call.context.span_id
        assert served.parent is not None and served.parent.is_remote
        assert (served.attributes or {})["http.route"] == "/execution/triggers/events"
        statements = [span for span in finished if _parent_of(span) == served.context.span_id and _statement(span)]
        assert statements, "no database span under the request's span"
        assert all(span.kind is SpanKind.CLIENT for span in statements)
        assert all(span.context is not None and span.context.trace_id == trace_id for span in statements)
        assert any(_statement(span).lstrip().upper().startswith("UPDATE TASK_INSTANCE") for span in statements), [
            _statement(span) for span in statements
        ]


async def test__a_bulk_call__is_the_first_fires_child_and_links_the_others(
    settings: Settings, auth: Auth, spans: InMemorySpanExporter
) -> None:
    async with traced(settings, auth) as world:
        made = await world.deferred(2)
        spans.clear()

        await world.deliver(*(_event(trigger_id, f"ev-{trigger_id}") for _, trigger_id in made))

        finished = list(spans.get_finished_spans())
        fires = sorted(
            (span for span in finished if span.name == "trigger fire"),
            key=lambda span: (span.attributes or {})["tocsin.trigger_id"],  # type: ignore[arg-type,return-value]
        )
        assert len(fires) == 2
        call = _one(finished, "submitTriggerEvents", SpanKind.CLIENT)
        assert fires[0].context is not None and fires[1].context is not None
        assert _parent_of(call) == fires[0].context.span_id
        assert [link.context.span_id for link in call.links] == [fires[1].context.span_id]


async def test__other_calls__are_named_by_their_operation(
    settings: Settings, auth: Auth, spans: InMemorySpanExporter
) -> None:
    async with traced(settings, auth) as world:
        await world.deferred(1)

        names = {(span.name, span.kind) for span in spans.get_finished_spans()}
        assert {("registerJob", SpanKind.CLIENT), ("registerJob", SpanKind.SERVER)} <= names
        assert {("loadTriggers", SpanKind.CLIENT), ("loadTriggers", SpanKind.SERVER)} <= names
        # the admin client is not instrumented, yet its requests get server spans of their own (new traces)
        assert ("createTaskInstance", SpanKind.SERVER) in names
        assert ("createTaskInstance", SpanKind.CLIENT) not in names


async def test__off__the_app_has_no_tracing_and_records_nothing(
    settings: Settings, auth: Auth, spans: InMemorySpanExporter
) -> None:
    app = create_app(settings, periodic_duties=False)
    assert not any(isinstance(plugin, OpenTelemetryPlugin) for plugin in app.plugins)
    async with (
        app.lifespan(),
        AsyncClient("http://testserver", token=_token(auth, "admin"), transport=httpx.ASGITransport(app=app)) as client,
    ):
        await client.list_variables()
    assert spans.get_finished_spans() == ()


async def test__excluded_urls__the_standard_variable_leaves_probes_untraced(
    settings: Settings, auth: Auth, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_LITESTAR_EXCLUDED_URLS", "health")
    async with traced(settings, auth) as world:
        await world.admin.get_health()
        await world.admin.get_ready()
    served = {span.name for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER}
    assert served == {"getReady"}
