"""TokenGrants: the supervisor's answers to runners' token requests, never left hanging."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from tocsin_client._client import AsyncClient
from tocsin_client.triggerer._grants import TokenGrants
from tocsin_client.triggerer._stats import Stats

from tests.triggerer.conftest import eventually


def client(handler: Any) -> AsyncClient:
    return AsyncClient("http://fake.test", token="job", transport=httpx.MockTransport(handler))


async def test__a_held_trigger__gets_the_token_of_its_fresh_workload() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        workload = {
            "trigger_id": 5,
            "classpath": "x.Y",
            "kwargs": {},
            "timeout_at": None,
            "task_instance": None,
            "token": "fresh",
        }
        return httpx.Response(200, json={"workloads": [workload]})

    answers: list[tuple[int, str | None]] = []
    grants = TokenGrants(client(handler), Stats(), lambda trigger_id, token: answers.append((trigger_id, token)))
    grants.request(5)
    await eventually(lambda: answers, what="the answer")
    assert answers == [(5, "fresh")]


async def test__a_bug_while_fetching__answers_no_token_instead_of_leaving_the_trigger_waiting() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise KeyError("a bug")

    answers: list[tuple[int, str | None]] = []
    stats = Stats()
    grants = TokenGrants(client(handler), stats, lambda trigger_id, token: answers.append((trigger_id, token)))
    grants.request(5)
    await eventually(lambda: answers, what="the answer")
    assert answers == [(5, None)]


async def test__close__cancels_what_is_in_flight() -> None:
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"workloads": []})

    answers: list[tuple[int, str | None]] = []
    grants = TokenGrants(client(handler), Stats(), lambda trigger_id, token: answers.append((trigger_id, token)))
    grants.request(5)
    await asyncio.sleep(0.01)
    await grants.close()
    release.set()
    await asyncio.sleep(0.01)
    assert answers == []
