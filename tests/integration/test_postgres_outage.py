"""Issue 7, A4: PostgreSQL going away while the server runs, and coming back.

PostgreSQL here is shared, so the outage is a TCP proxy between the server and PostgreSQL that is cut and
restored (a PostgreSQL restart takes about 2.5 s). Before the fix every request in that window got a 500 and
logged a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import postgres_database
from harness.live_server import live_server
from tests.conftest import SECRET
from tests.triggerer.proxy import Proxy

PROBLEM = "application/problem+json"
OUTAGE_S = 2.5


def _poll(check: Callable[[], httpx.Response], status: int, deadline_s: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        response = check()
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) > 0
    assert "PostgreSQL" in response.json()["detail"]


@pytest.mark.timeout(120)
def test__postgres_away_answers_503_logs_once_and_recovers(tmp_path: Path, authority: TokenAuthority) -> None:
    token = authority.issue("a4", ["admin", "worker"], 600)
    headers = {"Authorization": f"Bearer {token}"}
    with postgres_database() as direct:
        proxy = Proxy(5432)
        url = direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}", 1)
        assert url != direct
        try:
            with (
                live_server(url, SECRET, tmp_path / "server.log") as server,
                httpx.Client(base_url=server.url, headers=headers, timeout=30) as client,
            ):
                assert client.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": "before"}).status_code == 201

                proxy.stop()
                cut = time.monotonic()
                ready = _poll(lambda: client.get("/ready"), 503)
                _assert_unavailable(ready)
                _assert_unavailable(client.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": "during"}))
                _assert_unavailable(client.get("/execution/dag-runs/d/before/state"))
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut)))  # the length of a restart
                proxy.start()

                assert _poll(lambda: client.get("/ready"), 200).status_code == 200
                after = _poll(lambda: client.post("/api/v1/dag-runs", json={"dag_id": "d", "run_id": "after"}), 201)
                assert after.status_code == 201, after.text
                state = client.get("/execution/dag-runs/d/before/state")
                assert state.status_code == 200, state.text
        finally:
            proxy.stop()

    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log
    assert log.count("database unavailable") == 1, log
    assert log.count("database available again") == 1, log
