"""A validly signed token with malformed claims is a 401 problem on every route, never a 500 (issue 7, C18).

The signature is right (the secret holder minted it), so only the claims can be wrong: a scope the server
never issues (``job:abc``, ``ti:not-a-uuid``), a scope claim that is not a string, two job scopes.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.web.versioning import LATEST

from tests.conftest import SECRET
from tests.support.operations import operations

Client = TestClient[Litestar]

MALFORMED_SCOPES: list[Any] = [
    "job:abc",
    "job:1x",
    "job:",
    "job:0",
    "job:-1",
    "job: 1",
    "job:1_000",
    "job:١٢",  # Arabic-Indic digits: int() takes them, the server never issues them
    "job:99999999999999999999",
    "job:1 job:2",
    "ti:not-a-uuid",
    "ti:",
    "ti:00000000-0000-4000-8000-00000000000G",
    "ti:{00000000-0000-4000-8000-000000000001}",
    "ti:00000000-0000-4000-8000-000000000001 ti:00000000-0000-4000-8000-000000000002",
    "ti:00000000-0000-4000-8000-000000000001 run:no-slash",
    "ti:00000000-0000-4000-8000-000000000001 run:d/r/extra",
    "ti:00000000-0000-4000-8000-000000000001 run:/r",
    "run:d/r",
    "admin job:abc",
    "superuser",
    "admin:",
    ["admin"],
    5,
    None,
    {"admin": True},
    "   ",
]
_AUTHENTICATED = [op for op in operations(LATEST) if not op.open]


def _token(scope: Any) -> str:
    now = int(time.time())
    claims = {"iss": "tocsin", "aud": "tocsin", "sub": "hostile", "iat": now, "exp": now + 600, "scope": scope}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize("scope", MALFORMED_SCOPES, ids=repr)
def test__a_malformed_scope__is_401_problem_on_every_route(client: Client, scope: Any) -> None:
    headers = {"Authorization": f"Bearer {_token(scope)}"}
    for operation in _AUTHENTICATED:
        response = client.request(operation.method, operation.path, headers=headers, json={})
        assert response.status_code == 401, (operation, response.text)
        assert response.headers["content-type"] == "application/problem+json", operation
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["status"] == 401


@pytest.mark.parametrize(
    "scope",
    [
        "job:1",
        "job:9007199254740991",
        "ti:00000000-0000-4000-8000-000000000001",
        "ti:00000000-0000-4000-8000-000000000001 run:d/manual__2026-11-28T10:00:00+00:00",
        "admin worker triggerer",
    ],
)
def test__well_formed_scopes__still_authenticate(client: Client, scope: str) -> None:
    response = client.get("/execution/variables/absent", headers={"Authorization": f"Bearer {_token(scope)}"})
    assert response.status_code in (403, 404), response.text  # authenticated: the guard or the lookup answers


def test__a_job_token_at_the_largest_id__is_an_ordinary_stranger(client: Client) -> None:
    """The largest id a token may name reaches the database as a plain lookup (BIGINT on PostgreSQL)."""
    headers = {"Authorization": f"Bearer {_token('job:9007199254740991')}"}
    response = client.post("/execution/jobs/9007199254740991/heartbeat", headers=headers)
    assert response.status_code in (404, 409), response.text
    assert response.headers["content-type"] == "application/problem+json"
