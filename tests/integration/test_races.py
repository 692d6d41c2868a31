"""Concurrent writers against a real server process: exactly one wins where one must, none gets a 500."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer

WRITERS = 24


def _client(live: LiveServer, authority: TokenAuthority) -> httpx.AsyncClient:
    token = authority.issue("race", ["admin", "worker"], 600)
    return httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def _gather(*requests: object) -> list[httpx.Response]:
    return list(await asyncio.gather(*requests))  # type: ignore[arg-type]


def test__concurrent_upserts_of_one_variable_all_succeed(live: LiveServer, authority: TokenAuthority) -> None:
    async def run() -> None:
        async with _client(live, authority) as client:
            responses = await _gather(
                *(client.put("/execution/variables/hot", json={"value": f"v{i}"}) for i in range(WRITERS))
            )
            assert Counter(r.status_code for r in responses) == {200: WRITERS}
            final = (await client.get("/execution/variables/hot")).json()["value"]
            assert final in {f"v{i}" for i in range(WRITERS)}
            assert (await client.get("/api/v1/variables")).json()["total"] == 1

    asyncio.run(run())


def test__concurrent_creates_of_one_dag_run_make_exactly_one(live: LiveServer, authority: TokenAuthority) -> None:
    async def run() -> None:
        async with _client(live, authority) as client:
            body = {"dag_id": "race", "run_id": "r1"}
            responses = await _gather(*(client.post("/api/v1/dag-runs", json=body) for _ in range(WRITERS)))
            assert Counter(r.status_code for r in responses) == {201: 1, 409: WRITERS - 1}
            assert (await client.get("/api/v1/dag-runs", params={"dag_id": "race"})).json()["total"] == 1

    asyncio.run(run())


def test__concurrent_transitions_of_one_task_instance_let_exactly_one_win(
    live: LiveServer, authority: TokenAuthority
) -> None:
    async def run() -> None:
        async with _client(live, authority) as client:
            await client.post("/api/v1/dag-runs", json={"dag_id": "race", "run_id": "r2"})
            ti = (
                await client.post("/api/v1/task-instances", json={"dag_id": "race", "run_id": "r2", "task_id": "t"})
            ).json()
            path = f"/execution/task-instances/{ti['id']}/state"
            responses = await _gather(*(client.patch(path, json={"state": "running"}) for _ in range(WRITERS)))
            assert Counter(r.status_code for r in responses) == {200: 1, 409: WRITERS - 1}

            defer = {
                "state": "deferred",
                "classpath": "tocsin_client.triggers.TimeDeltaTrigger",
                "trigger_kwargs": {},
                "next_method": "go",
            }
            responses = await _gather(*(client.patch(path, json=defer) for _ in range(WRITERS)))
            assert Counter(r.status_code for r in responses) == {200: 1, 409: WRITERS - 1}
            assert (await client.get("/api/v1/triggers")).json()["total"] == 1  # one deferral, one trigger

    asyncio.run(run())
