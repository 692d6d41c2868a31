"""The runtime API end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from litestar import Litestar
from litestar.testing import TestClient

Client = TestClient[Litestar]


def make_task_instance(
    admin: Client, *, dag_id: str = "etl", run_id: str = "r1", task_id: str = "t1"
) -> dict[str, object]:
    if admin.get("/api/v1/dag-runs", params={"dag_id": dag_id}).json()["total"] == 0:
        assert admin.post("/api/v1/dag-runs", json={"dag_id": dag_id, "run_id": run_id}).status_code == 201
    response = admin.post("/api/v1/task-instances", json={"dag_id": dag_id, "run_id": run_id, "task_id": task_id})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test__variables__put_get_delete(admin: Client) -> None:
    put = admin.put("/execution/variables/greeting", json={"value": "hello", "description": "said on start"})
    assert put.status_code == 200
    assert put.json() == {"key": "greeting", "value": "hello", "description": "said on start"}

    assert admin.get("/execution/variables/greeting").json()["value"] == "hello"
    assert admin.put("/execution/variables/greeting", json={"value": "bye"}).json()["description"] is None
    assert admin.get("/execution/variables/greeting").json() == {"key": "greeting", "value": "bye", "description": None}

    assert admin.delete("/execution/variables/greeting").status_code == 204
    missing = admin.get("/execution/variables/greeting")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["errors"][0]["key"] == "key"
    assert admin.delete("/execution/variables/greeting").status_code == 404


def test__variables__admin_list_pages(admin: Client) -> None:
    for index in range(5):
        admin.put(f"/execution/variables/v{index}", json={"value": str(index)})
    page = admin.get("/api/v1/variables", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5
    assert [v["key"] for v in page["variables"]] == ["v1", "v2"]


def test__connections__put_get_list_delete(admin: Client) -> None:
    body = {"conn_type": "postgres", "host": "db.internal", "login": "etl", "password": "s3cret", "port": 5432}
    put = admin.put("/api/v1/connections/warehouse", json=body)
    assert put.status_code == 200
    got = admin.get("/execution/connections/warehouse").json()
    assert got == {**body, "conn_id": "warehouse", "schema": None, "extra": None}

    listed = admin.get("/api/v1/connections").json()
    assert listed["total"] == 1
    assert "password" not in listed["connections"][0]  # admin answers never carry secrets

    assert admin.delete("/api/v1/connections/warehouse").status_code == 204
    assert admin.get("/execution/connections/warehouse").status_code == 404


def test__xcoms__push_then_read_any_json(admin: Client) -> None:
    make_task_instance(admin)
    path = "/execution/xcoms/etl/r1/t1/return_value"
    assert admin.get(path).status_code == 404
    value = {"rows": 42, "nested": [1, "two", None, {"ok": True}], "ünï": "çødé"}
    pushed = admin.post(path, json={"value": value})
    assert pushed.status_code == 201
    assert admin.get(path).json() == {"key": "return_value", "value": value}
    admin.post(path, json={"value": [1, 2, 3]})
    assert admin.get(path).json()["value"] == [1, 2, 3]
    # map_index is part of the key
    assert admin.get(path, params={"map_index": 3}).status_code == 404


def test__xcoms__push_for_unknown_task_instance_is_404(admin: Client) -> None:
    response = admin.post("/execution/xcoms/etl/r1/nope/k", json={"value": 1})
    assert response.status_code == 404
    assert response.json()["errors"][0]["key"] == "task_id"


def test__task_instance_states__filtered_by_task_ids(admin: Client) -> None:
    for task_id in ("a", "b", "c"):
        make_task_instance(admin, task_id=task_id)
    states = admin.get("/execution/task-instances/states", params={"dag_id": "etl", "run_id": "r1"}).json()
    assert [s["task_id"] for s in states["task_states"]] == ["a", "b", "c"]
    some = admin.get(
        "/execution/task-instances/states",
        params=[("dag_id", "etl"), ("run_id", "r1"), ("task_ids", "a"), ("task_ids", "c")],
    ).json()
    assert [(s["task_id"], s["state"]) for s in some["task_states"]] == [("a", "none"), ("c", "none")]


def test__dag_run_state(admin: Client) -> None:
    admin.post("/api/v1/dag-runs", json={"dag_id": "etl", "run_id": "r9", "state": "queued"})
    assert admin.get("/execution/dag-runs/etl/r9/state").json() == {"state": "queued"}
    assert admin.get("/execution/dag-runs/etl/nope/state").status_code == 404


def test__task_instance__lifecycle_and_deferral(admin: Client) -> None:
    ti = make_task_instance(admin)
    path = f"/execution/task-instances/{ti['id']}/state"
    assert admin.patch(path, json={"state": "running"}).json()["state"] == "running"

    deferred = admin.patch(
        path,
        json={
            "state": "deferred",
            "classpath": "tocsin_client.triggers.TimeDeltaTrigger",
            "trigger_kwargs": {
                "moment": {"__classname__": "datetime.datetime", "__data__": "2030-01-01T00:00:00+00:00"}
            },
            "trigger_timeout": 3600,
            "next_method": "execute_complete",
            "next_kwargs": {"attempt": 1},
        },
    )
    assert deferred.status_code == 200, deferred.text
    body = deferred.json()
    assert body["state"] == "deferred"
    assert body["next_method"] == "execute_complete"
    assert body["next_kwargs"] == {"attempt": 1}
    assert body["trigger_timeout"] is not None

    triggers = admin.get("/api/v1/triggers").json()["triggers"]
    assert len(triggers) == 1
    assert triggers[0]["id"] == body["trigger_id"]
    assert triggers[0]["task_instance_ids"] == [ti["id"]]
    assert triggers[0]["triggerer_id"] is None

    # a deferred task instance cannot be moved on by a worker: only the trigger's event does that
    conflict = admin.patch(path, json={"state": "success"})
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["key"] == "state"


def test__task_instance__unknown_id_is_404(admin: Client) -> None:
    response = admin.patch(f"/execution/task-instances/{uuid.uuid4()}/state", json={"state": "running"})
    assert response.status_code == 404


def test__task_instance__duplicate_and_missing_dag_run(admin: Client) -> None:
    make_task_instance(admin)
    again = admin.post("/api/v1/task-instances", json={"dag_id": "etl", "run_id": "r1", "task_id": "t1"})
    assert again.status_code == 409
    orphan = admin.post("/api/v1/task-instances", json={"dag_id": "etl", "run_id": "nope", "task_id": "t1"})
    assert orphan.status_code == 404
    assert orphan.json()["errors"][0]["key"] == "run_id"


def test__admin__lists_and_filters(admin: Client, auth: Callable[..., dict[str, str]]) -> None:
    make_task_instance(admin, task_id="a")
    make_task_instance(admin, task_id="b")
    listed = admin.get("/api/v1/task-instances", params={"dag_id": "etl", "state": "none"}).json()
    assert listed["total"] == 2
    one = admin.get(f"/api/v1/task-instances/{listed['task_instances'][0]['id']}")
    assert one.json()["task_id"] == "a"
    assert admin.get("/api/v1/dag-runs").json()["total"] == 1
    assert admin.get("/api/v1/jobs").json() == {"jobs": [], "total": 0}
