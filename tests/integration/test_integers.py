"""Integers follow JSON Schema everywhere (issue 7, C22): an integral number (``1.0``, ``1e0``) is an integer in
every body, as in query parameters; ``1.5``, ``"1"`` and ``true`` are not and are refused naming the field.
Before the fix bodies decoded by the raw-body path refused ``1.0`` with 422 while the others took ``"5432"``.

The oracle is a JSON Schema validator (the spec's own language), so the server and the schema cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.web.versioning import VERSIONS

from tests.integration.orchestration import defer, load, register

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]
JSON = {"content-type": "application/json"}
INTEGER = Draft202012Validator({"type": "integer"})
# (literal as sent, the value JSON Schema reads)
NUMBERS: list[tuple[bytes, Any]] = [
    (b"2", 2),
    (b"2.0", 2.0),
    (b"2e0", 2.0),
    (b"0.2E1", 2.0),
    (b"2.5", 2.5),
    (b'"2"', "2"),
    (b"true", True),
]
IDS = [literal.decode() for literal, _ in NUMBERS]


def _expect(response: Any, value: Any, key: str) -> None:
    if INTEGER.is_valid(value):
        assert response.status_code < 300, response.text
    else:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["key"] == key


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("literal", "value"), NUMBERS, ids=IDS)
def test__connection_port(admin: Client, version: str, literal: bytes, value: Any) -> None:
    headers = {**JSON, "Tocsin-API-Version": version}
    assert admin.put("/api/v1/connections/c", json={"conn_type": "p", "port": 5432}, headers=headers).status_code == 200
    response = admin.put(
        "/api/v1/connections/c", content=b'{"conn_type": "p", "port": ' + literal + b"}", headers=headers
    )
    _expect(response, value, "port")
    stored = admin.get("/execution/connections/c").json()["port"]
    assert stored == (2 if INTEGER.is_valid(value) else 5432)  # the integer itself, or the old row untouched
    assert type(stored) is int


@pytest.mark.parametrize(("literal", "value"), NUMBERS, ids=IDS)
def test__job_registration(admin: Client, auth: Auth, literal: bytes, value: Any) -> None:
    body = b'{"hostname": "h", "pid": 7, "capacity": ' + literal + b"}"
    response = admin.post("/execution/jobs", content=body, headers={**JSON, **auth("triggerer")})
    _expect(response, value, "capacity")
    if INTEGER.is_valid(value):
        assert response.json()["capacity"] == 2


@pytest.mark.parametrize(("literal", "value"), NUMBERS, ids=IDS)
def test__list_items_of_workloads(admin: Client, auth: Auth, literal: bytes, value: Any) -> None:
    _, trigger_id = defer(admin)
    _, headers = register(admin, auth)
    assert trigger_id in load(admin, headers)["trigger_ids"]
    body = b'{"trigger_ids": [%d, %s]}' % (trigger_id, literal)
    response = admin.post("/execution/triggers/workloads", content=body, headers={**JSON, **headers})
    _expect(response, value, "trigger_ids[1]")


@pytest.mark.parametrize(("literal", "value"), NUMBERS, ids=IDS)
def test__nested_fields_of_raw_bodies(admin: Client, auth: Auth, literal: bytes, value: Any) -> None:
    """shipTriggerLogs keeps ``extra`` raw (the raw-body path): its integers follow the same rule."""
    ti_id, trigger_id = defer(admin)
    _, headers = register(admin, auth)
    assert trigger_id in load(admin, headers)["trigger_ids"]
    line = (
        b'{"trigger_id": %d, "task_instance_id": "%s", "try_number": %s, "timestamp": "2026-11-28T10:00:01Z",'
        b' "level": "info", "event": "e", "extra": {"ratio": 2.0}}' % (trigger_id, ti_id.encode(), literal)
    )
    body = b'{"lines": [' + line + b"], " + b'"dropped": 0.0}'
    response = admin.post("/execution/triggers/logs", content=body, headers={**JSON, **headers})
    _expect(response, value, "lines[0].try_number")
    if INTEGER.is_valid(value):
        [stored] = admin.get(f"/api/v1/task-instances/{ti_id}/logs").json()["lines"]
        assert stored["try_number"] == 2
        assert stored["extra"] == {"ratio": 2.0}  # raw JSON is never rewritten


@pytest.mark.parametrize(("literal", "value"), NUMBERS, ids=IDS)
def test__submitted_event_bodies(admin: Client, auth: Auth, literal: bytes, value: Any) -> None:
    """A payload is opaque and kept as sent; the integer rule applies to the body's own fields only."""
    ti_id, trigger_id = defer(admin)
    _, headers = register(admin, auth)
    assert trigger_id in load(admin, headers)["trigger_ids"]
    body = b'{"events": [{"trigger_id": %d, "event_id": "e1", "payload": 2.0}]}' % trigger_id
    response = admin.post("/execution/triggers/events", content=body, headers={**JSON, **headers})
    assert response.status_code == 200, response.text
    assert admin.get(f"/api/v1/task-instances/{ti_id}").json()["next_kwargs"]["event"] == 2.0
    # the item's trigger id written as a number of each kind
    _, other = defer(admin, task_id="t2")
    assert other in load(admin, headers)["trigger_ids"]
    spelled = {b"2": f"{other}", b"2.0": f"{other}.0", b"2e0": f"{other}e0", b"0.2E1": f"{other * 10}E-1"}
    literal_id = spelled[literal].encode() if INTEGER.is_valid(value) else literal
    body = b'{"events": [{"trigger_id": %s, "event_id": "e2", "payload": 1}]}' % literal_id
    response = admin.post("/execution/triggers/events", content=body, headers={**JSON, **headers})
    _expect(response, value, "events[0].trigger_id")


@pytest.mark.parametrize("limit", ["2", "2.0", "2e0"])
def test__query_integers_follow_the_same_rule(admin: Client, limit: str) -> None:
    assert admin.get("/api/v1/variables", params={"limit": limit}).status_code == 200


@pytest.mark.parametrize("limit", ["2.5", '"2"', "true"])
def test__query_non_integers_are_refused_naming_the_parameter(admin: Client, limit: str) -> None:
    """A bad parameter is 400 as the spec documents for every operation (422 is for bodies)."""
    response = admin.get("/api/v1/variables", params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["errors"][0]["key"] == "limit"
