"""An in-memory stand-in for the API server's orchestration endpoints, with fault injection.

It speaks the 2026-11-01 wire format through ``httpx.MockTransport``, so the supervisor under test uses the
real generated client. Faults are callables that see each request first and may answer it (a 503, a 409) or
raise a transport error (connection refused).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
from tocsin_client import serde

TRIGGERER_TOKEN = "triggerer-token"
Fault = Callable[[httpx.Request], httpx.Response | None]


def problem(status: int, title: str, detail: str = "") -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


@dataclass
class FakeTrigger:
    id: int
    classpath: str
    kwargs: dict[str, Any]
    with_task: bool = True
    holder: int | None = None
    fired: bool = False


@dataclass
class FakeJob:
    id: int
    hostname: str
    pid: int
    capacity: int
    state: str = "running"
    heartbeats: int = 0
    version: int = 0
    sent: set[int] = field(default_factory=set)


class FakeServer:
    def __init__(self, *, heartbeat_interval_s: float = 0.2, max_per_load: int = 100_000) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_per_load = max_per_load
        self.jobs: dict[int, FakeJob] = {}
        self.triggers: dict[int, FakeTrigger] = {}
        self.events: list[tuple[int, dict[str, Any]]] = []  # applied events (duplicates not repeated)
        self.event_ids: set[str] = set()
        self.failures: list[tuple[int, dict[str, Any]]] = []
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.faults: list[Fault] = []
        self.completed: list[int] = []
        self.cleanups = 0
        self.log_lines: list[dict[str, Any]] = []
        self.logs_dropped = 0
        self._ids = itertools.count(1)
        self._job_ids = itertools.count(1)

    # -- set-up ------------------------------------------------------------------------------------------------

    def add_trigger(self, classpath: str, kwargs: dict[str, Any], *, with_task: bool = True) -> int:
        trigger_id = next(self._ids)
        self.triggers[trigger_id] = FakeTrigger(trigger_id, classpath, serde.serialize(kwargs), with_task)
        return trigger_id

    def add_time_trigger(self, seconds: float) -> int:
        moment = datetime.now(UTC) + timedelta(seconds=seconds)
        return self.add_trigger("tocsin_client.triggers.TimeDeltaTrigger", {"moment": moment})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def bulk_calls(self) -> int:
        return self.calls("/execution/triggers/events")

    def events_for(self, trigger_id: int) -> list[dict[str, Any]]:
        return [body for tid, body in self.events if tid == trigger_id]

    def calls(self, path_pattern: str) -> int:
        return sum(1 for _, path, _ in self.requests if re.fullmatch(path_pattern, path))

    # -- handling ----------------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if (answer := self._fault(request)) is not None:
            return answer
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path, body))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if path == "/execution/jobs":
            if token != TRIGGERER_TOKEN:
                return problem(403, "Forbidden", "needs the triggerer scope")
            return self._register(body or {})
        job = self._job_for(token)
        if job is None:
            return problem(401, "Unauthorized", "not a job token")
        if match := re.fullmatch(r"/execution/jobs/(\d+)/(heartbeat|complete)", path):
            if int(match[1]) != job.id:
                return problem(403, "Forbidden", "another job")
            return self._heartbeat(job) if match[2] == "heartbeat" else self._complete(job)
        if path == "/execution/triggers/load":
            return self._load(job, (body or {}).get("known_version"))
        if path == "/execution/triggers/workloads":
            return self._workloads(job, (body or {})["trigger_ids"])
        if match := re.fullmatch(r"/execution/triggers/(\d+)/(event|failure)", path):
            return self._event(job, int(match[1]), match[2], body or {})
        if path == "/execution/triggers/logs":
            lines = (body or {})["lines"]
            self.log_lines.extend(lines)
            self.logs_dropped += (body or {}).get("dropped", 0)
            return httpx.Response(200, json={"stored": len(lines), "truncated": 0})
        if path == "/execution/triggers/events":
            return self._bulk(job, request, (body or {})["events"])
        if path == "/execution/triggers/cleanup":
            return self._cleanup()
        return problem(404, "Not Found", path)

    def _fault(self, request: httpx.Request) -> httpx.Response | None:
        for fault in list(self.faults):
            if (answer := fault(request)) is not None:
                return answer
        return None

    def _bulk(self, job: FakeJob, request: httpx.Request, items: list[dict[str, Any]]) -> httpx.Response:
        """Each item is judged as if it came alone, faults included (a fault that raises fails the whole call)."""
        results = []
        for item in items:
            trigger_id = item.pop("trigger_id")
            single = httpx.Request("POST", f"http://fake.test/execution/triggers/{trigger_id}/event", json=item)
            answer = self._fault(single) or self._event(job, trigger_id, "event", item)
            body = answer.json()
            ok = answer.status_code == 200
            results.append(
                {
                    "trigger_id": trigger_id,
                    "event_id": item["event_id"],
                    "status": answer.status_code,
                    "duplicate": body.get("duplicate", False) if ok else False,
                    "task_instances_resumed": body.get("task_instances_resumed", 0) if ok else 0,
                    "problem": None if ok else body,
                }
            )
        applied = sum(1 for result in results if result["status"] == 200)
        return httpx.Response(200, json={"results": results, "applied": applied, "failed": len(results) - applied})

    def _job_for(self, token: str) -> FakeJob | None:
        if match := re.fullmatch(r"job-(\d+)-token", token):
            return self.jobs.get(int(match[1]))
        return None

    def _register(self, body: dict[str, Any]) -> httpx.Response:
        job = FakeJob(next(self._job_ids), body["hostname"], body["pid"], body["capacity"])
        self.jobs[job.id] = job
        return httpx.Response(
            201,
            json={
                "job_id": job.id,
                "token": f"job-{job.id}-token",
                "capacity": job.capacity,
                "heartbeat_interval_s": self.heartbeat_interval_s,
                "liveness_threshold_s": self.heartbeat_interval_s * 6,
                # added in 2026-12-01; a client of an older version ignores it
                "heartbeat_deadline": (
                    datetime.now(UTC) + timedelta(seconds=self.heartbeat_interval_s * 6)
                ).isoformat(),
            },
        )

    def _heartbeat(self, job: FakeJob) -> httpx.Response:
        if job.state != "running":
            return problem(409, "Conflict", f"job {job.id} is {job.state}")
        job.heartbeats += 1
        now = datetime.now(UTC)
        deadline = now + timedelta(seconds=self.heartbeat_interval_s * 6)
        body = {"job_id": job.id, "latest_heartbeat": now.isoformat(), "heartbeat_deadline": deadline.isoformat()}
        return httpx.Response(200, json=body)

    def _complete(self, job: FakeJob) -> httpx.Response:
        job.state = "success"
        self.completed.append(job.id)
        for trigger in self.triggers.values():
            if trigger.holder == job.id:
                trigger.holder = None
        return httpx.Response(204)

    def held_by(self, job_id: int) -> set[int]:
        return {t.id for t in self.triggers.values() if t.holder == job_id}

    def _load(self, job: FakeJob, known: str | None) -> httpx.Response:
        if job.state != "running":
            return problem(409, "Conflict", f"job {job.id} is {job.state}")
        held = self.held_by(job.id)
        free = [t for t in self.triggers.values() if t.holder is None or self.jobs[t.holder].state != "running"]
        for trigger in free[: max(0, min(self.max_per_load, job.capacity - len(held)))]:
            trigger.holder = job.id
        held = self.held_by(job.id)
        current = f"{job.id}:{job.version}"
        job.version += 1
        version = f"{job.id}:{job.version}"
        if known is not None and known == current:
            answer = {
                "version": version,
                "full": False,
                "trigger_ids": [],
                "added": sorted(held - job.sent),
                "removed": sorted(job.sent - held),
            }
        else:
            answer = {"version": version, "full": True, "trigger_ids": sorted(held), "added": [], "removed": []}
        job.sent = held
        return httpx.Response(200, json=answer)

    def _workloads(self, job: FakeJob, ids: list[int]) -> httpx.Response:
        workloads = []
        for trigger_id in ids:
            trigger = self.triggers.get(trigger_id)
            if trigger is None or trigger.holder != job.id:
                continue
            ti = (
                {
                    "id": str(uuid4()),
                    "dag_id": "dag",
                    "run_id": "run",
                    "task_id": f"task_{trigger_id}",
                    "map_index": -1,
                    "try_number": 1,
                    "next_method": "execute_complete",
                }
                if trigger.with_task
                else None
            )
            workloads.append(
                {
                    "trigger_id": trigger.id,
                    "classpath": trigger.classpath,
                    "kwargs": trigger.kwargs,
                    "timeout_at": None,
                    "task_instance": ti,
                    "token": f"ti-token-{trigger_id}",
                }
            )
        return httpx.Response(200, json={"workloads": workloads})

    def _event(self, job: FakeJob, trigger_id: int, kind: str, body: dict[str, Any]) -> httpx.Response:
        trigger = self.triggers.get(trigger_id)
        if trigger is None:
            return problem(404, "Not Found", f"no trigger {trigger_id}")
        if trigger.holder != job.id:
            return problem(409, "Conflict", f"trigger {trigger_id} is held by another job")
        if kind == "failure":
            self.failures.append((trigger_id, body))
            trigger.fired = True
            return httpx.Response(200, json={"trigger_id": trigger_id, "task_instances_failed": 1})
        duplicate = body["event_id"] in self.event_ids
        if not duplicate:
            self.event_ids.add(body["event_id"])
            self.events.append((trigger_id, body))
            trigger.fired = True
        return httpx.Response(
            200,
            json={
                "trigger_id": trigger_id,
                "event_id": body["event_id"],
                "duplicate": duplicate,
                "task_instances_resumed": 0 if duplicate else 1,
            },
        )

    def _cleanup(self) -> httpx.Response:
        self.cleanups += 1
        gone = [t.id for t in self.triggers.values() if t.fired and t.with_task]
        for trigger_id in gone:
            del self.triggers[trigger_id]
        return httpx.Response(200, json={"deleted": len(gone), "ran": True})


def refuse_connections(request: httpx.Request) -> httpx.Response | None:
    raise httpx.ConnectError("connection refused (injected)", request=request)


def answer_for(path_pattern: str, response: Callable[[], httpx.Response], times: int | None = None) -> Fault:
    """A fault answering requests whose path matches, ``times`` times (always when None)."""
    left = [times]

    def fault(request: httpx.Request) -> httpx.Response | None:
        if not re.fullmatch(path_pattern, request.url.path) or left[0] == 0:
            return None
        if left[0] is not None:
            left[0] -= 1
        return response()

    return fault
