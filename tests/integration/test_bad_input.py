"""Bad input gets a clear 4xx problem naming the field; nothing is half-written; the server keeps serving."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.integration.test_runtime_api import make_task_instance

Client = TestClient[Litestar]


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert body["type"].startswith("urn:tocsin:problem:")  # type: ignore[attr-defined]
    return body


def _field(body: dict[str, object]) -> str:
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors
    return str(errors[0]["key"])


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 400),
        (b"", 400),
        (b"[1, 2]", 422),
        (b'"just a string"', 422),
        (b"\xff\xfe\x00garbage", 400),
    ],
)
def test__malformed_or_wrong_shape_bodies(admin: Client, content: bytes, status: int) -> None:
    response = admin.put("/execution/variables/k", content=content, headers={"content-type": "application/json"})
    _problem(response, status)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": 12}, "value"),
        ({}, "value"),
        ({"value": "v", "extra": 1}, "extra"),
        ({"value": "v", "description": ["no"]}, "description"),
    ],
)
def test__wrong_types_missing_and_unknown_fields_name_the_field(
    admin: Client, body: dict[str, object], field: str
) -> None:
    assert _field(_problem(admin.put("/execution/variables/k", json=body), 422)) == field


def test__unknown_enum_value_names_the_field(admin: Client) -> None:
    body = _problem(admin.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": "r", "state": "exploded"}), 422)
    assert _field(body) == "state"
    ti = make_task_instance(admin)
    body = _problem(admin.patch(f"/execution/task-instances/{ti['id']}/state", json={"state": "exploded"}), 422)
    assert _field(body) == "state"


def test__a_body_error_whose_text_says_malformed_is_still_a_422_naming_the_field(admin: Client) -> None:
    """The status comes from what failed, not from words in the message: a field or an enum value that happens
    to be called "malformed" is a body that does not fit the schema (422), not a malformed one (400)."""
    unknown = _problem(admin.put("/execution/variables/k", json={"value": "v", "malformed": 1}), 422)
    assert _field(unknown) == "malformed"
    enum = _problem(admin.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": "r", "state": "malformed"}), 422)
    assert _field(enum) == "state"


def test__over_long_strings(admin: Client) -> None:
    assert _field(_problem(admin.put("/api/v1/connections/c", json={"conn_type": "x" * 101}), 422)) == "conn_type"
    assert _field(_problem(admin.get("/execution/variables/" + "k" * 251), 400)) == "key"


@pytest.mark.parametrize(
    "key",
    ["'; DROP TABLE variable; --", "ключ", "a b", "%00", "..%2F..%2Fetc", "😀"],
    ids=["sql", "cyrillic", "space", "nul", "traversal", "emoji"],
)
def test__sql_ish_and_unicode_keys_are_400_and_harmless(admin: Client, key: str) -> None:
    assert admin.put("/execution/variables/real", json={"value": "kept"}).status_code == 200
    response = admin.put(f"/execution/variables/{key}", json={"value": "v"})
    assert response.status_code in (400, 404)  # 404 when the router cannot match the path at all
    assert response.headers["content-type"] == "application/problem+json"
    assert admin.get("/execution/variables/real").json()["value"] == "kept"
    assert admin.get("/api/v1/variables").json()["total"] == 1


def test__bad_query_parameters(admin: Client) -> None:
    assert _field(_problem(admin.get("/api/v1/variables", params={"limit": "many"}), 400)) == "limit"
    assert _field(_problem(admin.get("/api/v1/variables", params={"limit": 0}), 400)) == "limit"
    assert _field(_problem(admin.get("/execution/task-instances/states", params={"dag_id": "d"}), 400)) == "run_id"
    assert _field(_problem(admin.get("/execution/xcoms/d/r/t/k", params={"map_index": -2}), 400)) == "map_index"


def test__malformed_uuid_path_is_a_problem(admin: Client) -> None:
    response = admin.patch("/execution/task-instances/not-a-uuid/state", json={"state": "running"})
    assert response.status_code in (400, 404)
    assert response.headers["content-type"] == "application/problem+json"


def test__huge_body_is_413(admin: Client) -> None:
    response = admin.put("/execution/variables/big", json={"value": "x" * 2_000_000})
    _problem(response, 413)
    assert admin.get("/execution/variables/big").status_code == 404
    assert admin.get("/health").status_code == 200


def test__failed_deferral_writes_nothing(admin: Client) -> None:
    ti = make_task_instance(admin)
    path = f"/execution/task-instances/{ti['id']}/state"
    admin.patch(path, json={"state": "running"})
    bad = {"state": "deferred", "classpath": "not a classpath", "trigger_kwargs": {}, "next_method": "go"}
    assert _field(_problem(admin.patch(path, json=bad), 422)) == "classpath"
    assert admin.get("/api/v1/triggers").json()["total"] == 0
    assert admin.get(f"/api/v1/task-instances/{ti['id']}").json()["state"] == "running"


def test__rejected_transition_writes_nothing(admin: Client) -> None:
    ti = make_task_instance(admin)
    path = f"/execution/task-instances/{ti['id']}/state"
    _problem(admin.patch(path, json={"state": "success"}), 409)  # none → success is not allowed
    assert admin.get(f"/api/v1/task-instances/{ti['id']}").json()["state"] == "none"
