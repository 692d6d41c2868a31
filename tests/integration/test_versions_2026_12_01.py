"""Version 2026-12-01: typed events, bulk events, heartbeat deadlines, asset watchers, trigger logs — and the
declared changes that keep 2026-11-01 and 2026-06-01 clients on their own contracts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.web.versioning import LATEST

from tests.integration.orchestration import defer, load, register

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]
V11 = {"Tocsin-API-Version": "2026-11-01"}
V06 = {"Tocsin-API-Version": "2026-06-01"}


def _held(admin: Client, auth: Auth, **kwargs: Any) -> tuple[str, int, int, dict[str, str]]:
    ti_id, trigger_id = defer(admin, **kwargs)
    job_id, headers = register(admin, auth)
    assert trigger_id in load(admin, headers)["trigger_ids"]
    return ti_id, trigger_id, job_id, headers


# -- the declared changes --------------------------------------------------------------------------------------


def test__job_responses__gain_the_deadline_and_older_clients_get_the_older_shape(admin: Client, auth: Auth) -> None:
    body = {"hostname": "w", "pid": 1, "capacity": 5}
    latest = admin.post("/execution/jobs", json=body, headers=auth("triggerer"))
    older = admin.post("/execution/jobs", json=body, headers={**auth("triggerer"), **V11})
    assert latest.headers["tocsin-api-version"] == LATEST
    assert older.headers["tocsin-api-version"] == "2026-11-01"
    deadline = datetime.fromisoformat(latest.json()["heartbeat_deadline"])
    assert (deadline - datetime.now(deadline.tzinfo)).total_seconds() > 25
    assert "heartbeat_deadline" not in older.json()
    assert set(older.json()) == {"job_id", "token", "capacity", "heartbeat_interval_s", "liveness_threshold_s"}
    assert int(older.headers["content-length"]) == len(older.content)
    job = older.json()
    headers = {"Authorization": f"Bearer {job['token']}"}
    beat_old = admin.post(f"/execution/jobs/{job['job_id']}/heartbeat", headers={**headers, **V11})
    assert set(beat_old.json()) == {"job_id", "latest_heartbeat"}
    beat_new = admin.post(f"/execution/jobs/{job['job_id']}/heartbeat", headers=headers)
    assert set(beat_new.json()) == {"job_id", "latest_heartbeat", "heartbeat_deadline"}


def test__older_event_requests__are_upgraded_with_resume_and_may_not_use_new_fields(admin: Client, auth: Auth) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth)
    path = f"/execution/triggers/{trigger_id}/event"
    typed = admin.post(
        path, json={"event_id": "e", "payload": 1, "event_type": "task_success"}, headers={**headers, **V11}
    )
    assert typed.status_code == 422
    assert typed.json()["errors"][0]["key"] == "event_type"
    assert admin.get(f"/api/v1/task-instances/{ti_id}").json()["state"] == "deferred"
    plain = admin.post(path, json={"event_id": "e", "payload": {"ok": True}}, headers={**headers, **V11})
    assert plain.status_code == 200, plain.text
    assert plain.json()["task_instances_resumed"] == 1
    ti = admin.get(f"/api/v1/task-instances/{ti_id}").json()
    assert (ti["state"], ti["next_kwargs"]["event"]) == ("scheduled", {"ok": True})


@pytest.mark.parametrize(
    ("version", "path"),
    [
        ("2026-06-01", "/execution/triggers/load"),
        ("2026-06-01", "/execution/jobs"),
        ("2026-06-01", "/execution/triggers/events"),
        ("2026-11-01", "/execution/triggers/events"),
        ("2026-11-01", "/execution/triggers/logs"),
        ("2026-11-01", "/api/v1/asset-watchers"),
    ],
)
def test__operations_added_later__are_404_in_older_versions(admin: Client, version: str, path: str) -> None:
    response = admin.post(path, json={}, headers={"Tocsin-API-Version": version})
    assert response.status_code == 404
    assert response.headers["tocsin-api-version"] == version
    assert "does not exist in API version" in response.json()["detail"]


# -- typed events ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "state"), [("task_success", "success"), ("task_failed", "failed"), ("task_skipped", "skipped")]
)
def test__terminal_events__end_the_task_instance(admin: Client, auth: Auth, event_type: str, state: str) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth)
    xcoms = {"return_value": {"rows": 42, "exact": 1.50}, "count": 3}
    response = admin.post(
        f"/execution/triggers/{trigger_id}/event",
        json={"event_id": "end", "event_type": event_type, "payload": None, "xcoms": xcoms},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["task_instances_resumed"] == 1
    ti = admin.get(f"/api/v1/task-instances/{ti_id}").json()
    assert (ti["state"], ti["trigger_id"], ti["next_method"]) == (state, None, None)
    assert admin.get("/execution/xcoms/etl/r1/t1/return_value").json()["value"] == {"rows": 42, "exact": 1.5}
    assert admin.get("/execution/xcoms/etl/r1/t1/count").json()["value"] == 3


def test__xcoms_on_a_resume_event_or_with_a_bad_key_are_422(admin: Client, auth: Auth) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth)
    path = f"/execution/triggers/{trigger_id}/event"
    resume = admin.post(path, json={"event_id": "e", "payload": 1, "xcoms": {"k": 1}}, headers=headers)
    assert resume.status_code == 422
    assert resume.json()["errors"][0]["key"] == "xcoms"
    bad_key = admin.post(
        path, json={"event_id": "e", "event_type": "task_success", "payload": 1, "xcoms": {"a b": 1}}, headers=headers
    )
    assert bad_key.status_code == 422
    bad_type = admin.post(path, json={"event_id": "e", "event_type": "explode", "payload": 1}, headers=headers)
    assert bad_type.status_code == 422
    assert bad_type.json()["errors"][0]["key"] == "event_type"
    assert admin.get(f"/api/v1/task-instances/{ti_id}").json()["state"] == "deferred"


# -- bulk events -----------------------------------------------------------------------------------------------


def test__bulk_events__apply_each_and_report_per_item(admin: Client, auth: Auth, settings: Settings) -> None:
    ti_a, trigger_a = defer(admin, task_id="a")
    ti_b, trigger_b = defer(admin, task_id="b")
    _, trigger_c = defer(admin, task_id="c")
    _, headers = register(admin, auth, capacity=2)
    assert load(admin, headers)["trigger_ids"] == [trigger_a, trigger_b]
    _, other = register(admin, auth)
    assert load(admin, other)["trigger_ids"] == [trigger_c]
    events = [
        {"trigger_id": trigger_a, "event_id": "1", "payload": {"n": 1}},
        {"trigger_id": trigger_b, "event_id": "2", "event_type": "task_success", "payload": None},
        {"trigger_id": trigger_c, "event_id": "3", "payload": 3},
        {"trigger_id": 999_999, "event_id": "4", "payload": 4},
        {"trigger_id": trigger_a, "event_id": "5", "payload": "x" * (settings.max_event_payload_bytes + 1)},
        {"trigger_id": trigger_a, "event_id": "1", "payload": {"n": "again"}},
    ]
    response = admin.post("/execution/triggers/events", json={"events": events}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["event_id"], r["status"]) for r in body["results"]] == [
        ("1", 200),
        ("2", 200),
        ("3", 409),
        ("4", 404),
        ("5", 413),
        ("1", 200),
    ]
    assert (body["applied"], body["failed"]) == (3, 3)
    assert body["results"][0] == {
        "trigger_id": trigger_a,
        "event_id": "1",
        "status": 200,
        "duplicate": False,
        "task_instances_resumed": 1,
        "problem": None,
    }
    assert body["results"][5]["duplicate"] is True
    assert body["results"][2]["problem"]["status"] == 409
    assert body["results"][3]["problem"]["errors"][0]["key"] == "trigger_id"
    assert admin.get(f"/api/v1/task-instances/{ti_a}").json()["next_kwargs"]["event"] == {"n": 1}
    assert admin.get(f"/api/v1/task-instances/{ti_b}").json()["state"] == "success"
    again = admin.post("/execution/triggers/events", json={"events": events[:2]}, headers=headers).json()
    assert [r["duplicate"] for r in again["results"]] == [True, True]


def test__bulk_events__bad_bodies(admin: Client, auth: Auth) -> None:
    _, headers = register(admin, auth)
    assert admin.post("/execution/triggers/events", json={"events": []}, headers=headers).status_code == 422
    many = [{"trigger_id": 1, "event_id": str(i), "payload": i} for i in range(1001)]
    assert admin.post("/execution/triggers/events", json={"events": many}, headers=headers).status_code == 422
    nameless = admin.post(
        "/execution/triggers/events", json={"events": [{"trigger_id": 1, "payload": 1}]}, headers=headers
    )
    assert nameless.status_code == 422
    assert "event_id" in nameless.json()["errors"][0]["message"]


# -- asset watchers --------------------------------------------------------------------------------------------


@pytest.fixture
def allowlisting(settings: Settings, auth: Auth) -> Iterator[Client]:
    app = create_app(
        replace(settings, allowed_deserialization_classes=("tests.integration.orchestration.Landed*",)),
        periodic_duties=False,
    )
    with TestClient(app) as client:
        client.headers.update(auth("admin", "worker"))
        yield client


def test__asset_watcher__allowlisted_payload_decodes_and_a_foreign_one_is_refused(
    allowlisting: Client, auth: Auth
) -> None:
    admin = allowlisting
    created = admin.post(
        "/api/v1/asset-watchers",
        json={
            "asset_name": "s3://landing",
            "classpath": "tocsin_client.triggers.builtins.FileTrigger",
            "trigger_kwargs": {"path": "/x"},
        },
    )
    assert created.status_code == 201, created.text
    watcher = created.json()
    _, headers = register(admin, auth)
    assert load(admin, headers)["trigger_ids"] == [watcher["trigger_id"]]
    workloads = admin.post(
        "/execution/triggers/workloads", json={"trigger_ids": [watcher["trigger_id"]]}, headers=headers
    )
    [workload] = workloads.json()["workloads"]
    assert (workload["task_instance"], workload["token"]) == (None, None)

    path = f"/execution/triggers/{watcher['trigger_id']}/event"
    allowed = {"__classname__": "tests.integration.orchestration.LandedFile", "__data__": {"path": "/x/a.csv"}}
    foreign = {"__classname__": "tocsin_evil_module_xyz.Payload", "__data__": {}}
    assert admin.post(path, json={"event_id": "ok-1", "payload": allowed}, headers=headers).status_code == 200
    assert admin.post(path, json={"event_id": "ok-1", "payload": allowed}, headers=headers).json()["duplicate"] is True
    assert admin.post(path, json={"event_id": "bad-1", "payload": foreign}, headers=headers).status_code == 200
    import sys

    assert "tocsin_evil_module_xyz" not in sys.modules
    [listed] = admin.get("/api/v1/asset-watchers").json()["asset_watchers"]
    assert (listed["event_count"], listed["refused_count"]) == (1, 1)
    assert "not in the allowed deserialization classes" in listed["last_error"]
    events = admin.get(f"/api/v1/asset-watchers/{watcher['id']}/events").json()
    assert events["total"] == 1
    assert events["asset_events"][0]["payload"] == allowed
    assert events["asset_events"][0]["event_id"] == "ok-1"

    assert admin.delete(f"/api/v1/asset-watchers/{watcher['id']}").status_code == 204
    assert admin.delete(f"/api/v1/asset-watchers/{watcher['id']}").status_code == 404
    assert admin.get(f"/api/v1/asset-watchers/{watcher['id']}/events").status_code == 404
    assert admin.post("/execution/triggers/cleanup", headers=headers).json() == {"deleted": 1, "ran": True}
    assert load(admin, headers)["trigger_ids"] == []


# -- trigger logs ----------------------------------------------------------------------------------------------


def test__trigger_logs__are_kept_per_task_instance_try_and_job(admin: Client, auth: Auth, settings: Settings) -> None:
    ti_id, trigger_id, job_id, headers = _held(admin, auth)
    lines = [
        {
            "trigger_id": trigger_id,
            "task_instance_id": ti_id,
            "try_number": 1,
            "timestamp": "2026-11-28T10:00:01Z",
            "level": "info",
            "event": "waiting",
            "extra": {"attempt": 2, "ratio": 1.50},
        },
        {
            "trigger_id": trigger_id,
            "task_instance_id": ti_id,
            "try_number": 2,
            "timestamp": "2026-11-28T10:00:02Z",
            "level": "error",
            "event": "x" * (settings.max_log_line_bytes + 10),
        },
        {
            "trigger_id": trigger_id,
            "task_instance_id": None,
            "try_number": None,
            "timestamp": "2026-11-28T10:00:03Z",
            "level": "debug",
            "event": "no task",
        },
    ]
    shipped = admin.post("/execution/triggers/logs", json={"lines": lines, "dropped": 5}, headers=headers)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json() == {"stored": 3, "truncated": 1}
    assert admin.post(f"/execution/jobs/{job_id}/complete", headers=headers).status_code == 204

    every = admin.get(f"/api/v1/task-instances/{ti_id}/logs").json()
    assert every["total"] == 2
    first = every["lines"][0]
    assert (first["event"], first["level"], first["job_id"], first["try_number"]) == ("waiting", "info", job_id, 1)
    assert first["extra"] == {"attempt": 2, "ratio": 1.5}
    assert every["lines"][1]["truncated"] is True
    assert len(every["lines"][1]["event"]) == settings.max_log_line_bytes
    second = admin.get(f"/api/v1/task-instances/{ti_id}/logs", params={"try_number": 2}).json()
    assert [line["try_number"] for line in second["lines"]] == [2]


def test__trigger_logs__bad_input(admin: Client, auth: Auth) -> None:
    _, headers = register(admin, auth)
    line = {"trigger_id": 1, "timestamp": "2026-11-28T10:00:01Z", "level": "loud", "event": "x"}
    response = admin.post("/execution/triggers/logs", json={"lines": [line]}, headers=headers)
    assert response.status_code == 422
    assert admin.post("/execution/triggers/logs", json={"lines": []}, headers=auth("admin")).status_code == 403
