"""Bearer tokens and scopes: 401 for a missing or bad token, 403 for a missing scope; health is open."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.web.tokens import TokenAuthority

from tests.conftest import SECRET

Client = TestClient[Litestar]


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": "tocsin", "aud": "tocsin", "sub": "t", "iat": now, "exp": now + 60, "scope": "admin", **overrides}


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json", "/docs"])
def test__open_routes__need_no_token(client: Client, path: str) -> None:
    assert client.get(path).status_code == 200


def test__missing_token__is_401_problem(client: Client) -> None:
    response = client.get("/execution/variables/x")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in response.json()["detail"]


@pytest.mark.parametrize(
    ("overrides", "key", "reason"),
    [
        ({"exp": -3600}, SECRET, "expired"),
        ({}, "another-secret-of-enough-length-0123456789", "invalid"),
        ({"aud": "someone-else"}, SECRET, "invalid"),
        ({"iss": "someone-else"}, SECRET, "invalid"),
        ({"scope": ""}, SECRET, "no scope"),
        (None, SECRET, "invalid"),
    ],
    ids=["expired", "tampered", "wrong-audience", "wrong-issuer", "no-scope", "garbage"],
)
def test__bad_tokens__are_401(client: Client, overrides: dict[str, object] | None, key: str, reason: str) -> None:
    if overrides is None:
        token = "not-a-jwt"
    else:
        if "exp" in overrides:
            overrides = {**overrides, "exp": int(time.time()) + int(str(overrides["exp"]))}
        token = jwt.encode(_claims(**overrides), key, algorithm="HS256")
    response = client.get("/execution/variables/x", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert reason in response.json()["detail"]


def test__tampered_payload__is_401(client: Client, auth: Callable[..., dict[str, str]]) -> None:
    header, _, signature = auth("worker")["Authorization"].removeprefix("Bearer ").split(".")
    forged = jwt.utils.base64url_encode(b'{"scope":"admin","sub":"x","exp":9999999999}').decode()
    response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {header}.{forged}.{signature}"})
    assert response.status_code == 401


def test__wrong_scope__is_403(client: Client, auth: Callable[..., dict[str, str]]) -> None:
    response = client.get("/api/v1/jobs", headers=auth("worker"))
    assert response.status_code == 403
    assert "'admin'" in response.json()["detail"]
    assert client.put("/execution/variables/x", json={"value": "v"}, headers=auth("triggerer")).status_code == 403


def test__task_instance_token__reads_but_cannot_write(client: Client, authority: TokenAuthority) -> None:
    token = authority.issue("ti", ["ti:00000000-0000-0000-0000-000000000001"], 60)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/execution/variables/x", headers=headers).status_code == 404  # allowed, and absent
    assert client.put("/execution/variables/x", json={"value": "v"}, headers=headers).status_code == 403


def test__verified_tokens_are_cached_but_expiry_still_checked(authority: TokenAuthority) -> None:
    token = authority.issue("t", ["admin"], 1)
    assert authority.verify(token).scopes == frozenset({"admin"})
    assert authority.verify(token) is authority.verify(token)  # the cache answers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            authority.verify(token)
        except Exception as exc:
            assert "expired" in str(exc)
            break
        time.sleep(0.2)
    else:
        pytest.fail("a cached token outlived its expiry")


def test__task_instance_token__reads_xcoms_of_its_own_dag_run_only(
    client: Client, authority: TokenAuthority, auth: Callable[..., dict[str, str]]
) -> None:
    admin = auth("admin", "worker")
    for run_id in ("mine", "theirs"):
        client.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": run_id}, headers=admin)
        client.post("/api/v1/task-instances", json={"dag_id": "d", "run_id": run_id, "task_id": "t"}, headers=admin)
        client.post(f"/execution/xcoms/d/{run_id}/t/k", json={"value": run_id}, headers=admin)
    ti = "00000000-0000-0000-0000-000000000007"
    own = {"Authorization": f"Bearer {authority.issue('ti', [f'ti:{ti}', 'run:d/mine'], 60)}"}
    assert client.get("/execution/xcoms/d/mine/t/k", headers=own).json()["value"] == "mine"
    foreign = client.get("/execution/xcoms/d/theirs/t/k", headers=own)
    assert foreign.status_code == 403
    assert "own dag run" in foreign.json()["detail"]
    assert client.get("/execution/xcoms/d/theirs/t/k", headers=admin).json()["value"] == "theirs"
