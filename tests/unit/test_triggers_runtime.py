"""TriggerContext: runtime helpers call the generated operations with the workload's task-instance token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import httpx
import pytest
from tocsin_client import AsyncClient, ForbiddenError, NotFoundError
from tocsin_client.generated.models import WorkloadTaskInstance
from tocsin_client.triggers import TriggerContext

TI = WorkloadTaskInstance(
    id=UUID("0193a1de-4f6b-7c2e-9f1a-2b3c4d5e6f70"),
    dag_id="etl",
    run_id="run_1",
    task_id="wait",
    map_index=2,
    try_number=1,
    next_method="execute_complete",
)
Handler = Callable[[httpx.Request], httpx.Response]


def not_found() -> httpx.Response:
    return httpx.Response(404, json={"type": "urn:tocsin:problem:not-found", "title": "Not Found", "status": 404})


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], TriggerContext]]:
    clients: list[AsyncClient] = []

    def make(handler: Handler) -> TriggerContext:
        client = AsyncClient("http://tocsin.test", token="ti-token", transport=httpx.MockTransport(handler))
        clients.append(client)
        return TriggerContext(client=client, task_instance=TI)

    yield make
    for client in clients:
        await client.aclose()


class Recorder:
    def __init__(self, response: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self._response = response

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._response(request)


async def test__get_connection__returns_the_connection(serve: Callable[[Handler], TriggerContext]) -> None:
    body = {
        "conn_id": "pg",
        "conn_type": "postgres",
        "host": "db",
        "schema": None,
        "login": "etl",
        "password": "s3cret",
        "port": 5432,
        "extra": None,
    }
    recorder = Recorder(lambda _: httpx.Response(200, json=body))
    connection = await serve(recorder).get_connection("pg")

    assert connection.password == "s3cret"
    assert recorder.requests[0].url.path == "/execution/connections/pg"
    assert recorder.requests[0].headers["Authorization"] == "Bearer ti-token"


async def test__get_variable__returns_the_value_or_the_default(serve: Callable[[Handler], TriggerContext]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/greeting"):
            return httpx.Response(200, json={"key": "greeting", "value": "hello", "description": None})
        return not_found()

    context = serve(handler)

    assert await context.get_variable("greeting") == "hello"
    assert await context.get_variable("missing", default="fallback") == "fallback"
    with pytest.raises(NotFoundError):
        await context.get_variable("missing")


async def test__get_xcom__reads_this_dag_run(serve: Callable[[Handler], TriggerContext]) -> None:
    recorder = Recorder(lambda _: httpx.Response(200, json={"key": "rows", "value": {"n": 3}}))
    context = serve(recorder)

    assert await context.get_xcom("rows") == {"n": 3}
    assert await context.get_xcom("rows", task_id="extract", map_index=0) == {"n": 3}

    first, second = recorder.requests
    assert first.url.path == "/execution/xcoms/etl/run_1/wait/rows"
    assert "map_index" not in first.url.params
    assert second.url.path == "/execution/xcoms/etl/run_1/extract/rows"
    assert second.url.params["map_index"] == "0"


async def test__get_xcom__missing_returns_the_default(serve: Callable[[Handler], TriggerContext]) -> None:
    context = serve(lambda _: not_found())

    assert await context.get_xcom("rows", default=None) is None
    with pytest.raises(NotFoundError):
        await context.get_xcom("rows")


async def test__get_task_states__defaults_to_this_dag_run(serve: Callable[[Handler], TriggerContext]) -> None:
    body: dict[str, Any] = {
        "dag_id": "etl",
        "run_id": "run_1",
        "task_states": [{"task_id": "a", "map_index": -1, "state": "success"}],
    }
    recorder = Recorder(lambda _: httpx.Response(200, json=body))
    context = serve(recorder)

    states = await context.get_task_states(["a", "b"])
    await context.get_task_states(dag_id="other", run_id="run_9")

    assert [(item.task_id, item.state.value) for item in states] == [("a", "success")]
    assert recorder.requests[0].url.params.multi_items() == [
        ("dag_id", "etl"),
        ("run_id", "run_1"),
        ("task_ids", "a"),
        ("task_ids", "b"),
    ]
    assert recorder.requests[1].url.params.multi_items() == [("dag_id", "other"), ("run_id", "run_9")]


async def test__get_dag_run_state__defaults_to_this_dag_run(serve: Callable[[Handler], TriggerContext]) -> None:
    recorder = Recorder(lambda _: httpx.Response(200, json={"state": "running"}))
    context = serve(recorder)

    assert await context.get_dag_run_state() == "running"
    assert await context.get_dag_run_state(dag_id="other", run_id="r") == "running"
    assert recorder.requests[0].url.path == "/execution/dag-runs/etl/run_1/state"
    assert recorder.requests[1].url.path == "/execution/dag-runs/other/r/state"


async def test__context__without_task_instance__needs_an_explicit_dag_run() -> None:
    async with AsyncClient("http://tocsin.test", transport=httpx.MockTransport(lambda _: not_found())) as client:
        context = TriggerContext(client=client)
        with pytest.raises(RuntimeError, match="asset watcher"):
            await context.get_xcom("rows")
        with pytest.raises(RuntimeError, match="asset watcher"):
            await context.get_dag_run_state()
        with pytest.raises(NotFoundError):
            await context.get_dag_run_state(dag_id="d", run_id="r")


async def test__context__follows_the_refreshed_task_instance_token(serve: Callable[[Handler], TriggerContext]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] != "Bearer ti-token-2":
            return httpx.Response(200, json={"state": "running"}, headers={"Refreshed-API-Token": "ti-token-2"})
        return httpx.Response(403, json={"type": "x", "title": "Forbidden", "status": 403})

    context = serve(handler)
    await context.get_dag_run_state()
    with pytest.raises(ForbiddenError):
        await context.get_dag_run_state()
    assert context.client.token == "ti-token-2"
