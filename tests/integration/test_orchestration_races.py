"""Races against a real server process: concurrent claims never double-assign, an event racing a
reassignment applies at most once, and heartbeat vs. reaping is decided by one conditional update."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer
from tests.integration.orchestration import TRIGGER, age_job

JOBS = 8


def _headers(authority: TokenAuthority, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {authority.issue('race', list(scopes), 600)}"}


async def _defer_many(client: httpx.AsyncClient, admin: dict[str, str], count: int) -> list[int]:
    assert (
        await client.post("/api/v1/dag-runs", json={"dag_id": "race", "run_id": "r"}, headers=admin)
    ).status_code == 201

    async def one(index: int) -> int:
        body = {"dag_id": "race", "run_id": "r", "task_id": f"t{index}"}
        ti = (await client.post("/api/v1/task-instances", json=body, headers=admin)).json()["id"]
        path = f"/execution/task-instances/{ti}/state"
        assert (await client.patch(path, json={"state": "running"}, headers=admin)).status_code == 200
        deferred = {"state": "deferred", "classpath": TRIGGER, "trigger_kwargs": {}, "next_method": "go"}
        response = await client.patch(path, json=deferred, headers=admin)
        return int(response.json()["trigger_id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _register(client: httpx.AsyncClient, triggerer: dict[str, str]) -> tuple[int, dict[str, str]]:
    body = (
        await client.post("/execution/jobs", json={"hostname": "h", "pid": 1, "capacity": 1000}, headers=triggerer)
    ).json()
    return body["job_id"], {"Authorization": f"Bearer {body['token']}"}


async def _load(client: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    return await client.post("/execution/triggers/load", json={}, headers=headers)


def test__concurrent_loads_from_many_jobs_never_double_assign(live: LiveServer, authority: TokenAuthority) -> None:
    admin, triggerer = _headers(authority, "admin", "worker"), _headers(authority, "triggerer")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
            triggers = await _defer_many(client, admin, 300)
            jobs = [await _register(client, triggerer) for _ in range(JOBS)]
            held: dict[int, set[int]] = {job_id: set() for job_id, _ in jobs}
            for _ in range(6):  # rounds of simultaneous claims
                answers = await asyncio.gather(*(_load(client, headers) for _, headers in jobs))
                for (job_id, _), answer in zip(jobs, answers, strict=True):
                    assert answer.status_code == 200, answer.text
                    held[job_id] = set(answer.json()["trigger_ids"])
                seen: list[int] = [t for ids in held.values() for t in ids]
                assert len(seen) == len(set(seen)), "a trigger is held by two jobs"
            assert set().union(*held.values()) == set(triggers)
            listed = (await client.get("/api/v1/triggers", params={"limit": 1000}, headers=admin)).json()["triggers"]
            for trigger in listed:
                assert trigger["id"] in held[trigger["triggerer_id"]]

    asyncio.run(scenario())


@pytest.mark.parametrize("attempt", range(3))
def test__event_racing_a_reassignment_applies_at_most_once(
    live: LiveServer, authority: TokenAuthority, attempt: int
) -> None:
    admin, triggerer = _headers(authority, "admin", "worker"), _headers(authority, "triggerer")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
            triggers = await _defer_many(client, admin, 20)
            old_id, old = await _register(client, triggerer)
            assert sorted((await _load(client, old)).json()["trigger_ids"]) == sorted(triggers)
            await asyncio.to_thread(
                age_job, live.env["TOCSIN_DATABASE_URL"], old_id
            )  # its lease ran out: the next claim reaps it
            new_id, new = await _register(client, triggerer)
            sends = [
                client.post(f"/execution/triggers/{t}/event", json={"event_id": f"old-{t}", "payload": t}, headers=old)
                for t in triggers
            ]
            results = await asyncio.gather(_load(client, new), *sends)
            claimed = set(results[0].json()["trigger_ids"])
            statuses = {t: r.status_code for t, r in zip(triggers, results[1:], strict=True)}
            assert set(statuses.values()) <= {200, 409}
            # The server's reaping duty may reap the old job while that load runs: the load's own reap then skips
            # the locked job row and its claim does not yet see the released triggers. A triggerer loads again
            # each loop, so does this one, until it holds every trigger whose old event was refused.
            refused = {t for t, status in statuses.items() if status == 409}
            deadline = time.monotonic() + 15
            while not refused <= claimed:
                assert time.monotonic() < deadline, f"never claimed: {sorted(refused - claimed)}"
                await asyncio.sleep(0.05)
                claimed = set((await _load(client, new)).json()["trigger_ids"])
            # The new job then fires every trigger it holds; an already-resumed task must not move twice.
            for t in claimed:
                response = await client.post(
                    f"/execution/triggers/{t}/event", json={"event_id": f"new-{t}", "payload": -t}, headers=new
                )
                # When the old job's event applied first, nothing waits on the trigger any more and the server's
                # cleanup duty may delete it before this event arrives: 404 then, and nothing moves (checked below).
                assert response.status_code in ((200, 404) if statuses[t] == 200 else (200,)), (t, response.text)
            tis = (
                await client.get("/api/v1/task-instances", params={"dag_id": "race", "limit": 1000}, headers=admin)
            ).json()
            for ti in tis["task_instances"]:
                assert ti["state"] == "scheduled"
                event = ti["next_kwargs"]["event"]
                if statuses[abs(event)] == 200 and event > 0:
                    continue  # the old job's event won the race and applied once
                assert event < 0, "an event from a job that lost the trigger was applied"
            assert new_id != old_id

    asyncio.run(scenario())


@pytest.mark.parametrize("attempt", range(3))
def test__heartbeat_vs_reaping_is_decided_by_one_conditional_update(
    live: LiveServer, authority: TokenAuthority, attempt: int
) -> None:
    admin, triggerer = _headers(authority, "admin", "worker"), _headers(authority, "triggerer")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
            triggers = await _defer_many(client, admin, 10)
            late_id, late = await _register(client, triggerer)
            await _load(client, late)
            await asyncio.to_thread(age_job, live.env["TOCSIN_DATABASE_URL"], late_id)
            _, other = await _register(client, triggerer)
            beat, claim = await asyncio.gather(
                client.post(f"/execution/jobs/{late_id}/heartbeat", headers=late), _load(client, other)
            )
            jobs = {j["id"]: j for j in (await client.get("/api/v1/jobs", headers=admin)).json()["jobs"]}
            if beat.status_code == 200:  # the heartbeat landed first: the job lives and keeps its triggers
                assert jobs[late_id]["state"] == "running"
                assert claim.json()["trigger_ids"] == []
            else:  # the reaper landed first: the heartbeat is refused and the triggers moved
                assert beat.status_code == 409
                assert jobs[late_id]["state"] == "failed"
                # The reaper may be the server's duty, racing this load's claim: the next load then takes them.
                held, deadline = claim.json()["trigger_ids"], time.monotonic() + 15
                while sorted(held) != sorted(triggers):
                    assert time.monotonic() < deadline, f"the triggers never moved: {held}"
                    await asyncio.sleep(0.05)
                    held = (await _load(client, other)).json()["trigger_ids"]

    asyncio.run(scenario())
