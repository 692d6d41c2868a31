"""A real API server for the operator surface (tests/integration/test_operator_*.py), with real triggers and jobs.

Its reaper stays quiet (a duty row says it just ran, and its interval is an hour), so a job whose heartbeat a test
moved into the past stays held-but-dead: its triggers are ``orphaned`` until the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import empty_database, postgres_database, sqlite_database
from harness.live_server import LiveServer, live_server
from tests.conftest import SECRET
from tests.integration.orchestration import defer, load, sql
from tests.support.spec_validation import ResponseValidator

QUIET_REAPER = {"TOCSIN_TIMEOUT_CHECK_INTERVAL_S": "3600"}


def token(*scopes: str) -> str:
    return TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").issue("operator-test", list(scopes), 600)


@dataclass
class Held:
    """A triggerer job that holds triggers: its id, its job token's headers, the triggers it claimed."""

    job_id: int
    headers: dict[str, str]
    trigger_ids: list[int]


@dataclass
class OperatorEnv:
    server: LiveServer
    admin: httpx.Client
    """Admin + worker token; every response is validated against the spec of the version that served it."""

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def database_url(self) -> str:
        return self.server.env["TOCSIN_DATABASE_URL"]

    def defer(self, task_id: str, **kwargs: Any) -> tuple[str, int]:
        """A task instance deferred on a new trigger: (task instance id, trigger id)."""
        return defer(self.admin, task_id=task_id, **kwargs)  # type: ignore[arg-type]

    def job(self, capacity: int, hostname: str = "host-1") -> Held:
        """Register a triggerer job and let it claim up to ``capacity`` triggers."""
        response = self.admin.post(
            "/execution/jobs",
            json={"hostname": hostname, "pid": 42, "capacity": capacity},
            headers={"Authorization": f"Bearer {token('triggerer')}"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        headers = {"Authorization": f"Bearer {body['token']}"}
        return Held(body["job_id"], headers, load(self.admin, headers)["trigger_ids"])  # type: ignore[arg-type]

    def ship(self, held: Held, lines: list[dict[str, Any]]) -> None:
        response = self.admin.post("/execution/triggers/logs", json={"lines": lines}, headers=held.headers)
        assert response.status_code == 200, response.text


def log_line(trigger_id: int, ti_id: str | None, event: str, level: str = "info") -> dict[str, Any]:
    return {
        "trigger_id": trigger_id,
        "task_instance_id": ti_id,
        "try_number": 1,
        "timestamp": datetime.now(UTC).isoformat(),
        "level": level,
        "event": event,
    }


def _quiet_reaper(url: str) -> None:
    now = datetime.now(UTC)
    stamp: object = now if url.startswith("postgresql") else now.replace(tzinfo=None).isoformat(sep=" ")
    # an upsert: the live server's own duty loop may have written the row since the database was emptied
    sql(
        url,
        "INSERT INTO server_duty (name, last_run) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run",
        "timeouts",
        stamp,
    )


@pytest.fixture(scope="module")
def operator_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server per backend, on its own database, whose reaper does not run during the tests."""
    log = Path(tmp_path_factory.mktemp("operator-server")) / "server.log"
    with ExitStack() as stack:
        if database_url.startswith("postgresql"):
            url = stack.enter_context(postgres_database())
        else:
            url = stack.enter_context(sqlite_database(tmp_path_factory.mktemp("operator-sqlite")))
        yield stack.enter_context(live_server(url, SECRET, log, extra_env=QUIET_REAPER))


@pytest.fixture
def ops(operator_server: LiveServer) -> Iterator[OperatorEnv]:
    url = operator_server.env["TOCSIN_DATABASE_URL"]
    empty_database(url)
    _quiet_reaper(url)
    headers = {"Authorization": f"Bearer {token('admin', 'worker')}"}
    with httpx.Client(base_url=operator_server.url, headers=headers, timeout=10) as admin:
        admin.event_hooks["response"] = [ResponseValidator(operator_server.url)]
        yield OperatorEnv(operator_server, admin)
