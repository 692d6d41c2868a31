"""Helpers for the orchestration tests: jobs, deferred task instances, direct database nudges."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import TestClient

Client = TestClient[Litestar]
TRIGGER = "tocsin_client.triggers.builtins.TimeDeltaTrigger"


def register(client: Client, auth: Callable[..., dict[str, str]], capacity: int = 100) -> tuple[int, dict[str, str]]:
    response = client.post(
        "/execution/jobs", json={"hostname": "host-1", "pid": 42, "capacity": capacity}, headers=auth("triggerer")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["job_id"], {"Authorization": f"Bearer {body['token']}"}


def defer(
    admin: Client,
    *,
    task_id: str = "t1",
    run_id: str = "r1",
    timeout: float | None = None,
    next_kwargs: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """A task instance deferred on a new trigger: (task instance id, trigger id)."""
    if admin.get("/api/v1/dag-runs", params={"dag_id": "etl"}).json()["total"] == 0 or not any(
        r["run_id"] == run_id for r in admin.get("/api/v1/dag-runs", params={"dag_id": "etl"}).json()["dag_runs"]
    ):
        assert admin.post("/api/v1/dag-runs", json={"dag_id": "etl", "run_id": run_id}).status_code == 201
    created = admin.post("/api/v1/task-instances", json={"dag_id": "etl", "run_id": run_id, "task_id": task_id})
    assert created.status_code == 201, created.text
    ti_id = created.json()["id"]
    assert admin.patch(f"/execution/task-instances/{ti_id}/state", json={"state": "running"}).status_code == 200
    body: dict[str, Any] = {
        "state": "deferred",
        "classpath": TRIGGER,
        "trigger_kwargs": {"delta": {"__classname__": "datetime.timedelta", "__data__": 60.0}},
        "next_method": "execute_complete",
    }
    if timeout is not None:
        body["trigger_timeout"] = timeout
    if next_kwargs is not None:
        body["next_kwargs"] = next_kwargs
    deferred = admin.patch(f"/execution/task-instances/{ti_id}/state", json=body)
    assert deferred.status_code == 200, deferred.text
    return ti_id, deferred.json()["trigger_id"]


def load(client: Client, headers: dict[str, str], known: str | None = None) -> dict[str, Any]:
    response = client.post("/execution/triggers/load", json={"known_version": known}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sql(url: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement directly on the test database (``?`` placeholders on both backends)."""
    if url.startswith("postgresql"):

        async def run() -> list[tuple[Any, ...]]:
            numbered = statement
            for index in range(1, len(args) + 1):
                numbered = numbered.replace("?", f"${index}", 1)
            connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
            try:
                return [tuple(r) for r in await connection.fetch(numbered, *args)]
            finally:
                await connection.close()

        return asyncio.run(run())
    connection = sqlite3.connect(url.split("///", 1)[1], timeout=30)
    try:
        rows = connection.execute(statement, args).fetchall()
        connection.commit()
        return rows
    finally:
        connection.close()


def age_job(url: str, job_id: int, seconds: float = 3600) -> None:
    """Move a job's last heartbeat into the past, as if it had stopped heartbeating."""
    if url.startswith("postgresql"):
        sql(
            url,
            f"UPDATE job SET latest_heartbeat = latest_heartbeat - interval '{int(seconds)} seconds' WHERE id = ?",
            job_id,
        )
    else:
        rows = sql(url, "SELECT latest_heartbeat FROM job WHERE id = ?", job_id)
        from datetime import datetime, timedelta

        stamp = datetime.fromisoformat(rows[0][0]) - timedelta(seconds=seconds)
        sql(url, "UPDATE job SET latest_heartbeat = ? WHERE id = ?", stamp.isoformat(sep=" "), job_id)


def eventually(check: Callable[[], bool], deadline_s: float = 10.0, interval_s: float = 0.05) -> None:
    """Poll ``check`` until it holds or the deadline passes (then fail)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    assert check(), f"not true within {deadline_s} s"


@dataclass
class LandedFile:
    """An allowlisted class an asset watcher's payload may name."""

    path: str
