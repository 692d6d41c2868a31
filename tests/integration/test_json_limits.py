"""Deeply nested JSON and invalid UTF-8 in a body are 400 problems on every operation that takes a body, in
every version, and write nothing (issue 7, C16 and C17). Before the fix both were 500s from the decoder."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.web.json_limits import MAX_JSON_DEPTH
from tocsin_server.web.versioning import VERSIONS

from tests.integration.test_runtime_api import make_task_instance
from tests.support.operations import Operation, operations

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]
WITH_BODY = [(version, op) for version in VERSIONS for op in operations(version) if op.takes_body]
JSON = {"content-type": "application/json"}


def _nested(depth: int) -> bytes:
    """An object whose ``value`` holds arrays nested so that the whole body is ``depth`` levels deep."""
    return b'{"value": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def _problem(response: object, kind: str) -> None:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["type"] == f"urn:tocsin:problem:{kind}"
    assert body["errors"][0]["key"] == "body"


def _send(client: Client, auth: Auth, version: str, operation: Operation, content: bytes) -> object:
    # every kind of token at once (a job's too): the scope check comes before the body's, so each operation admits it
    headers = {**JSON, **auth("admin", "worker", "triggerer", "job:1"), "Tocsin-API-Version": version}
    return client.request(operation.method, operation.path, content=content, headers=headers)


def test__every_operation_with_a_body_is_covered() -> None:
    ids = {op.operation_id for _, op in WITH_BODY}
    assert {"putVariable", "setXCom", "submitTriggerEvent", "submitTriggerEvents", "shipTriggerLogs"} <= ids


@pytest.mark.parametrize(("version", "operation"), WITH_BODY, ids=[f"{v}-{op}" for v, op in WITH_BODY])
def test__deep_nesting__is_400_on_every_operation_with_a_body(
    client: Client, auth: Auth, version: str, operation: Operation
) -> None:
    for depth in (MAX_JSON_DEPTH + 1, 1_000, 10_000, 100_000):
        _problem(_send(client, auth, version, operation, _nested(depth)), "json-too-deep")
    # deep in a list of objects, after other fields: the scan sees the whole body
    late = b'{"a": "x", "lines": [{"m": 1}, ' + b"{" + b'"k":{' * 2_000 + b"}" * 2_001 + b"]}"
    _problem(_send(client, auth, version, operation, late), "json-too-deep")


@pytest.mark.parametrize(("version", "operation"), WITH_BODY, ids=[f"{v}-{op}" for v, op in WITH_BODY])
def test__invalid_utf8_in_a_string__is_400_on_every_operation_with_a_body(
    client: Client, auth: Auth, version: str, operation: Operation
) -> None:
    for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"ok\xe2\x82"):
        _problem(_send(client, auth, version, operation, b'{"value": "' + bad + b'"}'), "invalid-utf-8")


def test__nothing_is_written_and_the_server_keeps_serving(admin: Client) -> None:
    assert admin.put("/execution/variables/deep", content=_nested(5_000), headers=JSON).status_code == 400
    assert admin.put("/execution/variables/deep", content=b'{"value": "\xff"}', headers=JSON).status_code == 400
    assert admin.get("/execution/variables/deep").status_code == 404
    assert admin.put("/execution/variables/deep", json={"value": "fine"}).status_code == 200


def test__depth_up_to_the_limit_is_accepted_and_brackets_in_strings_do_not_count(admin: Client) -> None:
    make_task_instance(admin, dag_id="d", run_id="r", task_id="t")
    path = "/execution/xcoms/d/r/t/k"
    assert admin.post(path, content=_nested(MAX_JSON_DEPTH), headers=JSON).status_code == 201
    assert admin.post(path, content=_nested(MAX_JSON_DEPTH + 1), headers=JSON).status_code == 400
    brackets = '"' + "[{" * 20_000 + '\\"' + "}]" * 20_000 + '"'
    response = admin.post(path, content=b'{"value": ' + brackets.encode() + b"}", headers=JSON)
    assert response.status_code == 201, response.text
    assert admin.get(path).json()["value"] == "[{" * 20_000 + '"' + "}]" * 20_000


def test__a_caller_the_operation_does_not_admit_gets_its_403_before_the_body_is_judged(
    client: Client, auth: Auth
) -> None:
    """The order the README gives: token (401), scope (403), then the body's bytes (400)."""
    deep = _nested(10_000)
    headers = {**JSON, "Tocsin-API-Version": VERSIONS[-1]}
    unauthenticated = client.post("/execution/triggers/load", content=deep, headers=headers)
    assert unauthenticated.status_code == 401, unauthenticated.text
    not_a_job = client.post("/execution/triggers/load", content=deep, headers={**headers, **auth("worker")})
    assert not_a_job.status_code == 403, not_a_job.text
    admitted = client.post("/execution/triggers/load", content=deep, headers={**headers, **auth("job:1")})
    _problem(admitted, "json-too-deep")
