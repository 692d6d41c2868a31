"""Each operation's declared ``security`` in the latest spec is exactly what the server's guards enforce.

For every operation the spec lists, a token of each kind the scheme describes (``admin``, ``worker``,
``triggerer``, a job token, a task-instance token) calls the real app; the kinds the server admits (any answer
but 403) must be the kinds one of the operation's security requirements admits, and no token must be 401 on a
secured operation and not on an open one. A guard changed without the spec, or the spec without the guard,
fails here by operation name.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.web.spec import load_spec
from tocsin_server.web.tokens import TokenAuthority
from tocsin_server.web.versioning import LATEST

from tests.contract.schema_diff import HTTP_METHODS, resolve_refs

TASK_INSTANCE = str(uuid.UUID(int=7))
VALUES = {
    "dag_id": "d",
    "run_id": "r",
    "task_id": "t",
    "key": "k",
    "conn_id": "c",
    "task_instance_id": TASK_INSTANCE,
    "trigger_id": "1",
    "watcher_id": "1",
}
"""Path and query values the task-instance token below owns (and ``job_id``, the job the job token was issued
for), so an ownership check (another job, another dag run) never answers the 403 a missing scope would."""
ROLES = ("admin", "worker", "triggerer", "job", "task-instance")
"""The roles the spec's bearer scheme names."""

SPEC = load_spec(LATEST)
OPERATIONS = [
    (path, method, operation)
    for path, item in resolve_refs(SPEC, SPEC)["paths"].items()
    for method, operation in item.items()
    if method in HTTP_METHODS
]

# Scopes are checked before any database work, so one backend proves them.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def plain_client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def values() -> dict[str, str]:
    return dict(VALUES)


@pytest.fixture
def tokens(plain_client: TestClient[Litestar], authority: TokenAuthority, values: dict[str, str]) -> dict[str, str]:
    """A real token of each role; the job token is the one registerJob returns for a running job."""
    tokens = {role: authority.issue("security-test", [role], 600) for role in ("admin", "worker", "triggerer")}
    tokens["task-instance"] = authority.issue("security-test", [f"ti:{TASK_INSTANCE}", "run:d/r"], 600)
    body = {"hostname": "security-test", "pid": 1, "capacity": 10}
    registered = plain_client.post(
        "/execution/jobs", json=body, headers={"Authorization": f"Bearer {tokens['triggerer']}"}
    )
    assert registered.status_code == 201, registered.text
    tokens["job"] = registered.json()["token"]
    values["job_id"] = str(registered.json()["job_id"])
    return tokens


def _declared(operation: dict[str, Any]) -> set[str]:
    """The token kinds the operation's security admits: a requirement is met when its scopes are the token's."""
    requirements = operation["security"]  # every operation declares its own; none inherits the default
    if requirements == []:
        return set(ROLES)
    admitted = set()
    for requirement in requirements:
        assert list(requirement) == ["bearer"], requirement
        unknown = set(requirement["bearer"]) - set(ROLES)
        assert not unknown, f"scopes {unknown} are not roles of the bearer scheme"
        admitted |= {role for role in ROLES if set(requirement["bearer"]) <= {role}}
    return admitted


def _call(
    client: TestClient[Litestar],
    values: dict[str, str],
    path: str,
    method: str,
    operation: dict[str, Any],
    token: str | None,
) -> int:
    url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
    query = {
        p["name"]: values[p["name"]]
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"json": {}} if "requestBody" in operation else {}
    return client.request(method.upper(), url, params=query, headers=headers, **body).status_code


@pytest.mark.parametrize(
    ("path", "method", "operation"), OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS]
)
def test__declared_scopes__are_the_scopes_the_server_admits(
    plain_client: TestClient[Litestar],
    tokens: dict[str, str],
    values: dict[str, str],
    path: str,
    method: str,
    operation: dict[str, Any],
) -> None:
    admitted = {
        role for role, token in tokens.items() if _call(plain_client, values, path, method, operation, token) != 403
    }
    assert admitted == _declared(operation), f"the server admits {sorted(admitted)}"
    anonymous = _call(plain_client, values, path, method, operation, None)
    assert (anonymous == 401) == (operation["security"] != []), f"without a token: {anonymous}"
