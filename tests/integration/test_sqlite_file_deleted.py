"""Issue 7, A5: the SQLite file deleted while the server runs is noticed, reported and answered with 503.

Before the fix /ready stayed 200 (its pooled connections still read the deleted file) while writes, on new
connections that created an empty file, failed with 500 "no such table" and a traceback each.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import sqlite_database
from harness.live_server import live_server
from tests.conftest import SECRET

PROBLEM = "application/problem+json"


def _poll_ready(url: str, deadline_s: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        response = httpx.get(f"{url}/ready", timeout=5)
        if response.status_code == 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test__a_deleted_sqlite_file_makes_ready_and_writes_answer_503(tmp_path: Path, authority: TokenAuthority) -> None:
    token = authority.issue("a5", ["admin", "worker"], 600)
    headers = {"Authorization": f"Bearer {token}"}
    with sqlite_database(tmp_path) as url, live_server(url, SECRET, tmp_path / "server.log") as server:
        database = Path(url.split("///", 1)[1])
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            assert client.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": "before"}).status_code == 201
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)

            ready = _poll_ready(server.url)
            assert ready.status_code == 503, ready.text
            assert ready.headers["content-type"] == PROBLEM
            assert ready.headers["retry-after"]
            detail = ready.json()["detail"]
            assert str(database) in detail
            assert "deleted" in detail

            writes = [client.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": f"after-{n}"}) for n in range(5)]
            for write in writes:
                assert write.status_code == 503, write.text
                assert write.headers["content-type"] == PROBLEM
                assert write.headers["retry-after"]
                assert "deleted" in write.json()["detail"]

        log = server.log.read_text()
        assert "Traceback" not in log, log
        assert log.count("database unavailable") == 1, log
        assert not database.exists(), "the server must not create a new, empty database file"
