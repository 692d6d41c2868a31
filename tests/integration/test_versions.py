"""The version header: missing → latest, unknown → 400, echoed, routes absent from a version → 404."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.web.versioning import LATEST, VERSIONS

Client = TestClient[Litestar]


def test__missing_header__is_served_by_the_latest(admin: Client) -> None:
    assert admin.get("/health").headers["tocsin-api-version"] == LATEST


@pytest.mark.parametrize("version", VERSIONS)
def test__known_version__is_echoed(admin: Client, version: str) -> None:
    response = admin.get("/execution/variables/nope", headers={"Tocsin-API-Version": version})
    assert response.status_code == 404
    assert response.headers["tocsin-api-version"] == version


@pytest.mark.parametrize("raw", ["2020-01-01", "", "latest", "2026-11-1", "2099-12-31"])
def test__unknown_version__is_400_listing_the_supported(admin: Client, raw: str) -> None:
    response = admin.get("/health", headers={"Tocsin-API-Version": raw})
    assert response.status_code == 400
    body = response.json()
    assert body["supported_versions"] == list(VERSIONS)
    assert body["errors"][0]["key"] == "Tocsin-API-Version"
    assert "tocsin-api-version" not in response.headers  # no version served it


@pytest.mark.parametrize(
    "path",
    ["/execution/triggers/load", "/execution/jobs", "/execution/triggers/cleanup", "/execution/jobs/1/heartbeat"],
)
def test__triggerer_endpoints__do_not_exist_in_2026_06_01(admin: Client, path: str) -> None:
    response = admin.post(path, json={}, headers={"Tocsin-API-Version": "2026-06-01"})
    assert response.status_code == 404
    assert response.headers["tocsin-api-version"] == "2026-06-01"
    assert "2026-11-01" in response.json()["detail"]


def test__unknown_route__is_404_problem_and_echoes(admin: Client) -> None:
    response = admin.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["tocsin-api-version"] == LATEST


def test__wrong_method__is_405_with_allow(admin: Client) -> None:
    response = admin.post("/health")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


def test__published_contract__per_version(client: Client) -> None:
    for version in VERSIONS:
        document = client.get("/openapi.json", params={"version": version}).json()
        assert document["info"]["version"] == version
    assert client.get("/openapi.json").json()["info"]["version"] == LATEST
    assert client.get("/openapi.json", params={"version": "1999-01-01"}).status_code == 400
