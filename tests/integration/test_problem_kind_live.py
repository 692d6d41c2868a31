"""The client names the kind of a real server's problem (issue 8, item 1): with the database gone, an SDK call
fails with a transient ``ServerError`` whose ``kind`` is ``database-unavailable``, as the spec documents."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from tocsin_client import Client, errors
from tocsin_client.generated import models
from tocsin_server.web.tokens import TokenAuthority
from tocsin_wire import problems

from harness.databases import sqlite_database
from harness.live_server import live_server
from tests.conftest import SECRET


def _wait_until_unavailable(url: str, deadline_s: float = 15.0) -> None:
    deadline = time.monotonic() + deadline_s
    while httpx.get(f"{url}/ready", timeout=5).status_code != 503:
        assert time.monotonic() < deadline, "the server never noticed the deleted database"
        time.sleep(0.1)


def test__an_sdk_call_while_the_database_is_away_names_the_kind(tmp_path: Path, authority: TokenAuthority) -> None:
    token = authority.issue("kinds", ["admin"], 600)
    with sqlite_database(tmp_path) as url, live_server(url, SECRET, tmp_path / "server.log") as server:
        with Client(server.url, token=token) as client:
            client.create_dag_run(models.DagRunBody(dag_id="d", run_id="before"))
            with pytest.raises(errors.NotFoundError) as missing:
                client.get_task_instance(UUID("0193a1de-4f6b-7c2e-9f1a-2b3c4d5e6f70"))
            assert missing.value.kind == "not-found"

            database = Path(url.split("///", 1)[1])
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)
            _wait_until_unavailable(server.url)

            with pytest.raises(errors.ServerError) as caught:
                client.create_dag_run(models.DagRunBody(dag_id="d", run_id="after"))
        assert caught.value.status == 503
        assert caught.value.kind == problems.DATABASE_UNAVAILABLE
        assert caught.value.transient
