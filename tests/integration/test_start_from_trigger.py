"""Start from a trigger (issue 10, item 7; API version 2027-01-01): a task instance that has not run is deferred
with ``start_from_trigger: true`` and its trigger ends it (terminal event, XComs in the same transaction) or
resumes it to a worker. Older versions keep refusing a deferral that does not come from ``running``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.config import Settings

from tests.integration.orchestration import TRIGGER, load, register, sql

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]
OLDER = {"Tocsin-API-Version": "2026-12-15"}
DEFERRAL: dict[str, Any] = {
    "state": "deferred",
    "classpath": TRIGGER,
    "trigger_kwargs": {"delta": {"__classname__": "datetime.timedelta", "__data__": 60.0}},
    "next_method": "execute_complete",
}
FROM_TRIGGER = {**DEFERRAL, "start_from_trigger": True}


def _create(admin: Client, task_id: str, **body: Any) -> dict[str, Any]:
    if not admin.get("/api/v1/dag-runs", params={"dag_id": "etl"}).json()["total"]:
        assert admin.post("/api/v1/dag-runs", json={"dag_id": "etl", "run_id": "r1"}).status_code == 201
    created = admin.post("/api/v1/task-instances", json={"dag_id": "etl", "run_id": "r1", "task_id": task_id, **body})
    assert created.status_code == 201, created.text
    ti: dict[str, Any] = created.json()
    return ti


def _patch(admin: Client, ti_id: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return admin.patch(f"/execution/task-instances/{ti_id}/state", json=body, headers=headers or {})


def _set_state(url: str, ti_id: str, state: str) -> None:
    """Put a task instance in a state no API call moves it to (an engine's own queueing), as stored."""
    key: Any = uuid.UUID(ti_id).bytes if url.startswith("sqlite") else uuid.UUID(ti_id)
    sql(url, "UPDATE task_instance SET state = ? WHERE id = ?", state, key)


def _transitions(url: str, ti_id: str) -> list[tuple[str, str, str]]:
    rows = sql(url, "SELECT version, task_instance_id, previous_state, state, reason FROM task_instance_change")
    rows.sort(key=lambda row: int(row[0]))

    def text(stored: Any) -> str:
        return str(uuid.UUID(bytes=stored) if isinstance(stored, bytes) else uuid.UUID(str(stored)))

    return [(row[2], row[3], row[4]) for row in rows if text(row[1]) == ti_id]


def _event(admin: Client, trigger_id: int, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = admin.post(f"/execution/triggers/{trigger_id}/event", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("origin", ["none", "scheduled", "queued"])
def test__start_from_trigger__defers_a_task_that_has_not_run_keeping_its_try(
    admin: Client, settings: Settings, origin: str
) -> None:
    ti = _create(admin, f"from-{origin}", try_number=3)
    if origin != "none":
        _set_state(settings.database_url, ti["id"], origin)

    response = _patch(admin, ti["id"], {**FROM_TRIGGER, "next_kwargs": {"n": 1}, "trigger_timeout": 600})

    assert response.status_code == 200, response.text
    deferred = response.json()
    assert deferred["state"] == "deferred"
    assert deferred["start_from_trigger"] is True
    assert deferred["try_number"] == 3
    assert deferred["next_method"] == "execute_complete"
    assert deferred["next_kwargs"] == {"n": 1}
    assert deferred["trigger_timeout"] is not None
    trigger = admin.get("/api/v1/triggers").json()["triggers"]
    assert [t["id"] for t in trigger] == [deferred["trigger_id"]]
    assert admin.get(f"/api/v1/task-instances/{ti['id']}").json() == deferred
    assert _transitions(settings.database_url, ti["id"]) == [(origin, "deferred", "deferred")]


def test__terminal_event__ends_a_task_started_from_a_trigger_with_its_xcoms(
    admin: Client, auth: Auth, settings: Settings
) -> None:
    ti = _create(admin, "ends")
    trigger_id = _patch(admin, ti["id"], FROM_TRIGGER).json()["trigger_id"]
    _, headers = register(admin, auth)
    load(admin, headers)

    result = _event(
        admin, trigger_id, headers, event_id="e1", event_type="task_success", payload=None, xcoms={"rows": 42}
    )

    assert result["task_instances_resumed"] == 1
    ended = admin.get(f"/api/v1/task-instances/{ti['id']}").json()
    assert (ended["state"], ended["trigger_id"], ended["start_from_trigger"]) == ("success", None, True)
    assert ended["try_number"] == 1
    xcom = admin.get("/execution/xcoms/etl/r1/ends/rows")
    assert xcom.status_code == 200, xcom.text
    assert xcom.json()["value"] == 42
    assert _transitions(settings.database_url, ti["id"]) == [
        ("none", "deferred", "deferred"),
        ("deferred", "success", "ended"),
    ]


@pytest.mark.parametrize(("event_type", "state"), [("task_failed", "failed"), ("task_skipped", "skipped")])
def test__other_terminal_events__end_a_task_started_from_a_trigger(
    admin: Client, auth: Auth, settings: Settings, event_type: str, state: str
) -> None:
    ti = _create(admin, event_type)
    trigger_id = _patch(admin, ti["id"], FROM_TRIGGER).json()["trigger_id"]
    _, headers = register(admin, auth)
    load(admin, headers)

    _event(admin, trigger_id, headers, event_id="e1", event_type=event_type, payload={"why": "x"})

    assert admin.get(f"/api/v1/task-instances/{ti['id']}").json()["state"] == state
    assert _transitions(settings.database_url, ti["id"])[-1] == ("deferred", state, "ended")


def test__resume__hands_a_task_started_from_a_trigger_to_a_worker(
    admin: Client, auth: Auth, settings: Settings
) -> None:
    ti = _create(admin, "resumes")
    trigger_id = _patch(admin, ti["id"], {**FROM_TRIGGER, "next_kwargs": {"n": 1}}).json()["trigger_id"]
    _, headers = register(admin, auth)
    load(admin, headers)

    _event(admin, trigger_id, headers, event_id="e1", payload={"ok": True})
    resumed = admin.get(f"/api/v1/task-instances/{ti['id']}").json()
    assert resumed["state"] == "scheduled"
    assert resumed["next_kwargs"] == {"n": 1, "event": {"ok": True}}
    assert resumed["start_from_trigger"] is True
    running = _patch(admin, ti["id"], {"state": "running"})
    assert running.status_code == 200, running.text
    assert _patch(admin, ti["id"], {"state": "success"}).json()["start_from_trigger"] is True
    assert _transitions(settings.database_url, ti["id"]) == [
        ("none", "deferred", "deferred"),
        ("deferred", "scheduled", "resumed"),
        ("scheduled", "running", "changed"),
        ("running", "success", "changed"),
    ]


def _conflict(response: Any, field: str) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["key"] == field


@pytest.mark.parametrize("origin", ["running", "success", "failed", "skipped", "deferred", "up_for_retry"])
def test__start_from_trigger__of_a_task_that_ran_or_waits_is_409(
    admin: Client, settings: Settings, origin: str
) -> None:
    ti = _create(admin, f"bad-{origin}")
    _set_state(settings.database_url, ti["id"], origin)

    response = _patch(admin, ti["id"], FROM_TRIGGER)

    _conflict(response, "start_from_trigger")
    assert "only from none, queued, scheduled" in response.json()["detail"]
    assert admin.get(f"/api/v1/task-instances/{ti['id']}").json()["state"] == origin
    assert admin.get("/api/v1/triggers").json()["triggers"] == []


@pytest.mark.parametrize("body", [DEFERRAL, {**DEFERRAL, "start_from_trigger": False}])
def test__ordinary_deferral__still_needs_running(admin: Client, body: dict[str, Any]) -> None:
    ti = _create(admin, "ordinary")

    _conflict(_patch(admin, ti["id"], body), "state")
    assert _patch(admin, ti["id"], {"state": "running"}).json()["start_from_trigger"] is False
    deferred = _patch(admin, ti["id"], body)
    assert deferred.status_code == 200, deferred.text
    assert deferred.json()["start_from_trigger"] is False


def test__start_from_trigger__must_be_a_boolean(admin: Client) -> None:
    ti = _create(admin, "typed")

    response = _patch(admin, ti["id"], {**DEFERRAL, "start_from_trigger": "yes"})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["key"] == "start_from_trigger"


def test__older_version__knows_no_start_from_trigger_and_defers_only_running(admin: Client) -> None:
    ti = _create(admin, "older")

    sent = _patch(admin, ti["id"], FROM_TRIGGER, OLDER)
    assert sent.status_code == 422, sent.text
    assert sent.json()["errors"][0]["key"] == "start_from_trigger"
    _conflict(_patch(admin, ti["id"], DEFERRAL, OLDER), "state")
    assert admin.get(f"/api/v1/task-instances/{ti['id']}").json()["state"] == "none"

    running = _patch(admin, ti["id"], {"state": "running"}, OLDER)
    assert running.status_code == 200, running.text
    assert "start_from_trigger" not in running.json()
    deferred = _patch(admin, ti["id"], DEFERRAL, OLDER)
    assert deferred.status_code == 200, deferred.text
    assert "start_from_trigger" not in deferred.json()
    assert "start_from_trigger" not in admin.get(f"/api/v1/task-instances/{ti['id']}", headers=OLDER).json()
    listed = admin.get("/api/v1/task-instances", headers=OLDER).json()["task_instances"]
    assert listed and all("start_from_trigger" not in item for item in listed)
    assert all("start_from_trigger" in item for item in admin.get("/api/v1/task-instances").json()["task_instances"])
