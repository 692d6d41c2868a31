"""A real server and triggerer flow with JSON logs at DEBUG: every line of both parses, carries the pipeline's
fields (the triggerer's name their job, a trigger's its trigger), and no token, password or trigger kwargs
value appears anywhere in either output."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.live_server import LiveServer
from tests.triggerer.e2e_support import P, Triggerer, poll

pytestmark = pytest.mark.slow
JSON_DEBUG = {"TOCSIN_LOG_FORMAT": "json", "TOCSIN_LOG_LEVEL": "DEBUG"}


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return lines


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # what is logged does not depend on it
def test__a_server_and_triggerer_flow__logs_json_lines_without_secrets(
    start_server: Callable[..., LiveServer],
    start_triggerer: Callable[..., Triggerer],
    tasks_for: Any,
    authority: TokenAuthority,
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    kwarg_secret = f"kw-{uuid.uuid4().hex}"
    admin_token = authority.issue("logs-admin", ["admin", "worker"], 600)
    triggerer_token = authority.issue("logs-triggerer", ["triggerer"], 600)
    server = start_server(**JSON_DEBUG)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=10) as http:
        body = {"conn_type": "postgres", "host": "db.internal", "login": "etl", "password": password}
        assert http.put("/api/v1/connections/warehouse", json=body).status_code == 200
        wrong = http.get("/api/v1/jobs", headers={"Authorization": f"Bearer {admin_token[:-4]}AAAA"})
        assert wrong.status_code == 401
    tasks = tasks_for(server.url)
    logged = tasks.defer(f"{P}.Logging", {"api_key": kwarg_secret, "note": kwarg_secret})
    raising = tasks.defer(f"{P}.Raising", {"password": kwarg_secret})
    trigger_ids = {trigger.classpath: trigger.id for trigger in tasks.client.list_triggers().triggers}
    triggerer = start_triggerer(server.url, TOCSIN_TOKEN=triggerer_token, **JSON_DEBUG)
    tasks.wait_state(logged, "scheduled")
    tasks.wait_state(raising, "scheduled")
    poll(lambda: "hello from trigger" in triggerer.output(), 10, "the trigger's own line in the triggerer's log")
    triggerer.process.send_signal(signal.SIGTERM)
    assert triggerer.wait(20) == 0

    server_text, triggerer_text = server.log.read_text(), triggerer.output()
    for text in (server_text, triggerer_text):
        for secret in (admin_token, triggerer_token, password, kwarg_secret):
            assert secret not in text
        assert "eyJ" not in text  # no JWT at all: the job's and the task instances' tokens neither
        for line in json_lines(text):
            assert isinstance(line.get("timestamp"), str), line
            assert isinstance(line.get("level"), str), line
            assert isinstance(line.get("event"), str), line

    server_lines, triggerer_lines = json_lines(server_text), json_lines(triggerer_text)
    requests = [line for line in server_lines if line["event"] == "request"]
    assert {"putConnection", "registerJob", "submitTriggerEvent"} & {line["operation_id"] for line in requests}
    assert any(line["status"] == 401 for line in requests)
    [registered] = [line for line in triggerer_lines if line["event"].startswith("registered job")]
    job_id = registered["job_id"]
    assert str(job_id) in registered["event"]
    [hello] = [line for line in triggerer_lines if line["event"] == "hello from trigger"]
    assert hello["job_id"] == job_id
    assert hello["runner"] == 0
    assert hello["trigger_id"] == trigger_ids[f"{P}.Logging"]
    [raised] = [line for line in triggerer_lines if line["event"].startswith("trigger ") and "raised" in line["event"]]
    assert raised["trigger_id"] == trigger_ids[f"{P}.Raising"]
    assert "Traceback" in raised["exception"]
    assert all(line.get("job_id") == job_id for line in triggerer_lines if line["logger"].startswith("tocsin."))
