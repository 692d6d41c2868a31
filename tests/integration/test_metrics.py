"""``/metrics`` on a real ``tocsin api-server``: exact counter deltas after a real orchestration flow (defer → claim →
event), duplicates and refusals, the periodic duties, the pool, and the bounded operation labels."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tocsin_server.config import Settings
from tocsin_server.db.engine import create_write_engine

from harness.live_server import LiveServer, live_server
from tests.conftest import SECRET
from tests.integration.orchestration import defer, load, register
from tests.support.metrics import Scrape, scrape

Auth = Callable[..., dict[str, str]]
EVENTS = "tocsin_trigger_events_total"
REQUESTS = "tocsin_http_requests_total"
DURATION_COUNT = "tocsin_http_request_duration_seconds_count"
FOREIGN = {"__classname__": "tocsin_evil_module_xyz.Payload", "__data__": {}}


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def pool_size(database_url: str) -> int:
    """The write pool's size as the server builds it (computed, not assumed)."""
    engine = create_write_engine(Settings(database_url=database_url, jwt_secret=SECRET).validate())
    return int(engine.sync_engine.pool.size())  # type: ignore[attr-defined]


def test__an_orchestration_flow__moves_each_counter_by_exactly_what_happened(live: LiveServer, auth: Auth) -> None:
    metrics_url = f"{live.url}/metrics"
    with httpx.Client(base_url=live.url, headers=auth("admin", "worker"), timeout=30) as admin:
        before = scrape(metrics_url)
        _, first = defer(admin, task_id="t1")
        _, second = defer(admin, task_id="t2")
        watcher = admin.post(
            "/api/v1/asset-watchers",
            json={
                "asset_name": "s3://x",
                "classpath": "tocsin_client.triggers.builtins.FileTrigger",
                "trigger_kwargs": {"path": "/x"},
            },
        ).json()
        _, job = register(admin, auth)
        assert sorted(load(admin, job)["trigger_ids"]) == sorted([first, second, watcher["trigger_id"]])

        one = admin.post(f"/execution/triggers/{first}/event", json={"event_id": "e1", "payload": 1}, headers=job)
        assert one.json()["task_instances_resumed"] == 1
        batch = admin.post(
            "/execution/triggers/events",
            json={
                "events": [
                    {"trigger_id": second, "event_id": "e2", "payload": 2},
                    {"trigger_id": second, "event_id": "e2", "payload": 2},  # the same event twice: a duplicate
                    {"trigger_id": 999_999, "event_id": "e3", "payload": 3},  # no such trigger: refused
                ]
            },
            headers=job,
        ).json()
        assert [r["status"] for r in batch["results"]] == [200, 200, 404]
        assert batch["results"][1]["duplicate"] is True
        missing = admin.post("/execution/triggers/999999/event", json={"event_id": "e4", "payload": 4}, headers=job)
        assert missing.status_code == 404
        refused = admin.post(
            f"/execution/triggers/{watcher['trigger_id']}/event",
            json={"event_id": "bad", "payload": FOREIGN},
            headers=job,
        )
        assert refused.status_code == 200  # the event is applied; the watcher refuses its payload
        assert httpx.get(f"{live.url}/api/v1/triggers", timeout=10).status_code == 401  # a middleware's answer
        assert httpx.get(f"{live.url}/no/such/route", timeout=10).status_code == 404
        after = scrape(metrics_url)

    assert after.content_type == "text/plain; version=0.0.4; charset=utf-8"  # what a scraper without Accept reads
    assert delta(before, after, "tocsin_triggers_claimed_total") == 3
    assert delta(before, after, EVENTS, outcome="applied") == 3  # e1, e2, the watcher's
    assert delta(before, after, EVENTS, outcome="duplicate") == 1
    assert delta(before, after, EVENTS, outcome="refused") == 2  # e3 in the batch, e4 alone
    assert delta(before, after, "tocsin_asset_events_refused_total") == 1
    assert delta(before, after, REQUESTS, operation="submitTriggerEvent", status="200") == 2
    assert delta(before, after, REQUESTS, operation="submitTriggerEvent", status="404") == 1
    assert delta(before, after, REQUESTS, operation="submitTriggerEvents", status="200") == 1
    assert delta(before, after, REQUESTS, operation="loadTriggers", status="200") == 1
    assert delta(before, after, REQUESTS, operation="listTriggers", status="401") == 1
    assert delta(before, after, REQUESTS, operation="unmatched", status="404") == 1
    assert delta(before, after, DURATION_COUNT, operation="submitTriggerEvent") == 3
    assert (
        delta(before, after, "tocsin_http_request_duration_seconds_bucket", operation="submitTriggerEvent", le="+Inf")
        == 3
    )
    assert not after.has(DURATION_COUNT, operation="unmatched")  # it never reached a route: no latency series
    # the label is the operation, never the path: every value is an operationId of the contract (or one of ours)
    document = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    contract = {operation["operationId"] for item in document["paths"].values() for operation in item.values()}
    labelled = {value for _, labels in after.samples for name, value in labels if name == "operation"}
    assert {"submitTriggerEvent", "unmatched", "get_metrics"} <= labelled <= contract | {"unmatched", "get_metrics"}

    size = after.value("tocsin_db_pool_size")
    assert size == pool_size(live.env["TOCSIN_DATABASE_URL"])
    assert 0 <= after.value("tocsin_db_pool_checked_out") <= 2 * size  # duties may hold one at this instant


def test__metrics_are_open_and_outside_the_contract(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/metrics", timeout=10).status_code == 200  # no token: Prometheus carries none
    document = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    assert "/metrics" not in document["paths"]


def _poll(read: Callable[[], Scrape], done: Callable[[Scrape], bool], what: str, timeout_s: float = 30) -> Scrape:
    deadline = time.monotonic() + timeout_s
    while True:
        current = read()
        if done(current):
            return current
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_s} s")
        time.sleep(0.1)


FAST_DUTIES = {
    "TOCSIN_HEARTBEAT_INTERVAL_S": "0.1",
    "TOCSIN_LIVENESS_THRESHOLD_S": "0.5",
    "TOCSIN_CLEANUP_INTERVAL_S": "0.3",
    "TOCSIN_TIMEOUT_CHECK_INTERVAL_S": "0.3",
}


@pytest.mark.slow
def test__the_periodic_duties__count_their_runs_timeouts_and_reaped_jobs(
    clean_database: str, tmp_path: Path, auth: Auth
) -> None:
    with (
        live_server(clean_database, SECRET, tmp_path / "server.log", FAST_DUTIES) as server,
        httpx.Client(base_url=server.url, headers=auth("admin", "worker"), timeout=30) as admin,
    ):
        metrics_url = f"{server.url}/metrics"
        before = scrape(metrics_url)
        timed_out, _ = defer(admin, task_id="late", timeout=0)
        defer(admin, task_id="waits", timeout=3600)
        register(admin, auth)  # never heartbeats: reaped once its lease runs out

        def settled(now: Scrape) -> bool:
            return (
                delta(before, now, "tocsin_trigger_timeouts_total") >= 1
                and delta(before, now, "tocsin_jobs_reaped_total") >= 1
                and now.value("tocsin_duty_runs_total", duty="retention") >= 1
            )

        reached = _poll(lambda: scrape(metrics_url), settled, "the timeout and the reap were not counted")
        runs = reached.value("tocsin_duty_runs_total", duty="timeouts")
        # two more rounds of the duty: nothing is counted twice
        after = _poll(
            lambda: scrape(metrics_url),
            lambda now: now.value("tocsin_duty_runs_total", duty="timeouts") >= runs + 2,
            "the timeouts duty did not run again",
        )
        assert admin.get(f"/api/v1/task-instances/{timed_out}").json()["state"] == "scheduled"
    assert delta(before, after, "tocsin_trigger_timeouts_total") == 1
    assert delta(before, after, "tocsin_jobs_reaped_total") == 1
    assert delta(before, after, "tocsin_duty_runs_total", duty="cleanup") >= 1
    # retention runs once per hour server-wide: once, on this fresh database, however many rounds passed
    assert after.value("tocsin_duty_runs_total", duty="retention") == 1
