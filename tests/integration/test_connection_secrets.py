"""Secrets are write-only: a connection's password is never in an admin answer, in any version; the runtime
read that triggers use still returns it to worker and task-instance tokens (issue 7, C21). Before the fix
``PUT /api/v1/connections/{id}`` echoed the password."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.web.versioning import LATEST, VERSIONS

from tests.support.operations import operations

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]
SECRET_PASSWORD = "hunter2-never-echoed-0d5c"
BODY = {"conn_type": "postgres", "host": "db.internal", "login": "etl", "password": SECRET_PASSWORD, "port": 5432}
OLDER = [v for v in VERSIONS if v < "2026-12-15"]


def test__put__answers_without_the_password(admin: Client) -> None:
    response = admin.put("/api/v1/connections/warehouse", json=BODY)
    assert response.status_code == 200, response.text
    assert response.headers["tocsin-api-version"] == LATEST
    assert SECRET_PASSWORD not in response.text
    assert response.json() == {
        "conn_id": "warehouse",
        "conn_type": "postgres",
        "host": "db.internal",
        "schema": None,
        "login": "etl",
        "port": 5432,
        "extra": None,
    }


@pytest.mark.parametrize("version", OLDER)
def test__older_versions__keep_their_password_field_but_it_is_null(admin: Client, version: str) -> None:
    """Their schema requires ``password``; null conforms to it (the client validates every answer)."""
    headers = {"Tocsin-API-Version": version}
    put = admin.put("/api/v1/connections/warehouse", json=BODY, headers=headers)
    assert put.status_code == 200, put.text
    assert put.headers["tocsin-api-version"] == version
    assert put.json()["password"] is None
    assert int(put.headers["content-length"]) == len(put.content)
    listed = admin.get("/api/v1/connections", headers=headers)
    assert [c["password"] for c in listed.json()["connections"]] == [None]
    assert int(listed.headers["content-length"]) == len(listed.content)
    assert SECRET_PASSWORD not in put.text + listed.text


@pytest.mark.parametrize("version", VERSIONS)
def test__no_admin_answer_carries_the_password(admin: Client, version: str) -> None:
    admin.put("/api/v1/connections/warehouse", json=BODY)
    admin.put("/api/v1/connections/other", json={**BODY, "password": SECRET_PASSWORD + "-2"})
    headers = {"Tocsin-API-Version": version}
    readable = [op for op in operations(version) if "admin" in op.tags and op.method == "GET"]
    assert {"listConnections"} <= {op.operation_id for op in readable}
    for operation in readable:
        path = operation.path.replace("/connections/x", "/connections/warehouse")
        response = admin.get(path, headers=headers)
        assert response.status_code < 500, (operation, response.text)
        assert SECRET_PASSWORD not in response.text, operation
    again = admin.put("/api/v1/connections/warehouse", json=BODY, headers=headers)
    assert SECRET_PASSWORD not in again.text


@pytest.mark.parametrize("version", VERSIONS)
def test__the_runtime_read__still_returns_the_password(client: Client, auth: Auth, version: str) -> None:
    assert client.put("/api/v1/connections/warehouse", json=BODY, headers=auth("admin")).status_code == 200
    ti = {"ti": "ti:00000000-0000-4000-8000-000000000001"}
    for headers in (auth("worker"), auth(ti["ti"])):
        got = client.get("/execution/connections/warehouse", headers={**headers, "Tocsin-API-Version": version})
        assert got.status_code == 200, got.text
        assert got.json()["password"] == SECRET_PASSWORD
