"""An expired task-instance token: the trigger's client asks for a fresh one and retries once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from tocsin_client import serde
from tocsin_client.triggerer._tokens import TokenBroker, TriggerClient

from tests.triggerer.test_host import ListSink, P, workload


def variable_server(valid: set[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in valid:
            body = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "expired"}
            return httpx.Response(401, json=body)
        return httpx.Response(200, json={"key": "k", "value": "v", "description": None})

    return httpx.MockTransport(handle)


async def test__expired_token__is_refreshed_through_the_broker_and_the_call_retried() -> None:
    from tocsin_client.triggerer._host import TriggerHost

    requests: list[int] = []
    broker = TokenBroker(requests.append)
    client = TriggerClient("http://tocsin.test", transport=variable_server({"fresh"}))
    client.refresher = broker.fresh
    sink = ListSink()
    host = TriggerHost(sink, client.for_trigger)
    host.start(workload(5, f"{P}.ReadsVariableLater", {"key": "k"}))
    async with asyncio.timeout(5):
        while not requests:
            await asyncio.sleep(0.01)
    assert requests == [5]
    broker.grant(5, "fresh")
    await sink.until(lambda: sink.events or sink.failures)
    assert sink.failures == []
    assert serde.deserialize(sink.events[0].payload) == "v"
    await client.aclose()


async def test__no_fresh_token__the_401_stands_and_the_trigger_fails() -> None:
    from tocsin_client.triggerer._host import TriggerHost

    broker = TokenBroker(lambda trigger_id: broker.grant(trigger_id, None))
    client = TriggerClient("http://tocsin.test", transport=variable_server(set()))
    client.refresher = broker.fresh
    sink: Any = ListSink()
    host = TriggerHost(sink, client.for_trigger)
    host.start(workload(5, f"{P}.ReadsVariableLater", {"key": "k"}))
    await sink.until(lambda: sink.failures)
    assert "401 Unauthorized" in sink.failures[0].error
    await client.aclose()
