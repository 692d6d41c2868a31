"""A rolling upgrade: `tocsin db upgrade` of a newer release runs while this release's replicas serve.

Its migrations only add, so a replica of this release must stay ready on the schema a newer release migrated
to (else the load balancer would pull every old replica at once: downtime). A schema *behind* this release is
still not ready, and says to run `tocsin db upgrade`.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from tocsin_server.db import migrate

from harness.databases import sqlite_database
from harness.live_server import live_server
from tests.conftest import SECRET


def _set_revision(url: str, revision: str) -> None:
    connection = sqlite3.connect(url.split("///", 1)[1], timeout=30)
    try:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        connection.commit()
    finally:
        connection.close()


def _ready_until(url: str, status: int, deadline_s: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        response = httpx.get(f"{url}/ready", timeout=5)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("revision", "status"),
    [("9999_from_a_newer_release", 200), ("0003", 503)],
    ids=["schema-ahead-stays-ready", "schema-behind-is-not-ready"],
)
def test__ready_on_a_schema_a_newer_release_migrated_but_not_on_an_older_one(
    tmp_path: Path, revision: str, status: int
) -> None:
    assert revision == "9999_from_a_newer_release" or revision in migrate.known_revisions()
    with sqlite_database(tmp_path) as url, live_server(url, SECRET, tmp_path / "server.log") as server:
        assert httpx.get(f"{server.url}/ready", timeout=5).status_code == 200
        _set_revision(url, revision)
        answer = _ready_until(server.url, 503 if status == 200 else status, deadline_s=1.0 if status == 200 else 15.0)
        assert answer.status_code == status, answer.text
        if status == 503:
            assert "run `tocsin db upgrade`" in answer.json()["detail"]
            assert revision in answer.json()["detail"]
