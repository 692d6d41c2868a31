"""From 2027-01-01 on, every operation of the contract refuses a query parameter it does not declare (one rule in
the version middleware, not one per handler); 2026-12-15 still ignores them. Swept over the latest file."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.web.query_rules import declared_query_parameters
from tocsin_server.web.spec import load_spec
from tocsin_server.web.versioning import LATEST

from tests.conftest import SECRET

Client = TestClient[Litestar]
METHODS = ("get", "put", "post", "patch", "delete")


def _operations() -> list[tuple[str, str, str]]:
    """(operationId, method, a concrete path) for every operation of the latest file."""
    document = load_spec(LATEST)
    shared = document["components"]["parameters"]
    found = []
    for template, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            kinds: dict[str, Any] = {}
            for parameter in operation.get("parameters", []):
                resolved = shared[parameter["$ref"].rsplit("/", 1)[1]] if "$ref" in parameter else parameter
                if resolved["in"] == "path":
                    kinds[resolved["name"]] = resolved["schema"]
            path = re.sub(r"\{(\w+)\}", lambda m, kinds=kinds: _value(kinds[m.group(1)]), template)
            found.append((operation["operationId"], method, path))
    return found


def _value(schema: dict[str, Any]) -> str:
    if schema.get("type") == "integer":
        return "1"
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    return "x"


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """One app for the sweep: every request here is refused before a handler or the database is reached."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", jwt_secret=SECRET), periodic_duties=False)
    with TestClient(app) as test_client:
        yield test_client


def test__an_unknown_query_parameter__is_400_naming_it_on_every_operation(client: Client) -> None:
    assert len(OPERATIONS) > 30
    declared = declared_query_parameters(LATEST)
    wrong = []
    for operation_id, method, path in OPERATIONS:
        response = client.request(method.upper(), f"{path}?limit=1&zz_unknown=1")
        named = [e["key"] for e in response.json().get("errors", [])] if response.status_code == 400 else []
        expected = ["zz_unknown"] if "limit" in declared[operation_id] else ["limit", "zz_unknown"]
        if response.headers.get("content-type") != "application/problem+json" or named != expected:
            wrong.append((operation_id, response.status_code, response.text[:200]))
    assert wrong == []


def test__2026_12_15__ignores_them(client: Client) -> None:
    response = client.get("/health?zz_unknown=1", headers={"Tocsin-API-Version": "2026-12-15"})
    assert response.status_code == 200
