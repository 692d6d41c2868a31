"""Events, failures, workloads and timeouts: fencing, idempotency, payloads spliced as received."""

from __future__ import annotations

import builtins
import importlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.web.tokens import TokenAuthority

from tests.conftest import SECRET
from tests.integration.orchestration import defer, eventually, load, register

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]


def _event(client: Client, trigger_id: int, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"/execution/triggers/{trigger_id}/event", json=body, headers=headers)


def _held(admin: Client, auth: Auth, **defer_kwargs: Any) -> tuple[str, int, int, dict[str, str]]:
    ti_id, trigger_id = defer(admin, **defer_kwargs)
    job_id, headers = register(admin, auth)
    assert trigger_id in load(admin, headers)["trigger_ids"]
    return ti_id, trigger_id, job_id, headers


def test__event__resumes_the_task_with_the_payload_spliced_as_received(admin: Client, auth: Auth) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth, next_kwargs={"cursor": 7, "deep": {"a": [1, 2.50]}})
    raw = b'{"event_id": "ev-1", "payload": {"status": "done", "rows": 1.50, "big": 123456789012345678901234567890}}'
    response = admin.post(
        f"/execution/triggers/{trigger_id}/event", content=raw, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "trigger_id": trigger_id,
        "event_id": "ev-1",
        "duplicate": False,
        "task_instances_resumed": 1,
    }
    ti = admin.get(f"/api/v1/task-instances/{ti_id}")
    # Byte for byte: 1.50 stays 1.50 and the 30-digit integer is not rounded through a float.
    assert '"event":{"status": "done", "rows": 1.50, "big": 123456789012345678901234567890}' in ti.text
    assert '"deep":{"a":[1,2.5]}' in ti.text  # the stored kwargs pass through untouched too
    body = ti.json()
    assert body["state"] == "scheduled"
    assert body["trigger_id"] is None
    assert body["next_method"] == "execute_complete"
    assert body["next_kwargs"]["cursor"] == 7


def test__event__duplicate_event_id_answers_the_same_and_applies_once(admin: Client, auth: Auth) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth)
    first = _event(admin, trigger_id, headers, event_id="same", payload={"n": 1})
    again = _event(admin, trigger_id, headers, event_id="same", payload={"n": 2})
    assert first.status_code == again.status_code == 200
    assert first.json()["task_instances_resumed"] == again.json()["task_instances_resumed"] == 1
    assert again.json()["duplicate"] is True
    assert admin.get(f"/api/v1/task-instances/{ti_id}").json()["next_kwargs"]["event"] == {"n": 1}
    other = _event(admin, trigger_id, headers, event_id="later", payload={"n": 3})
    assert other.json() == {
        "trigger_id": trigger_id,
        "event_id": "later",
        "duplicate": False,
        "task_instances_resumed": 0,
    }


def test__event__from_a_job_that_does_not_hold_the_trigger_is_409(admin: Client, auth: Auth) -> None:
    ti_id, trigger_id, _, _ = _held(admin, auth)
    _, stranger = register(admin, auth)
    response = _event(admin, trigger_id, stranger, event_id="e", payload=1)
    assert response.status_code == 409
    assert response.json()["errors"][0]["key"] == "trigger_id"
    assert admin.get(f"/api/v1/task-instances/{ti_id}").json()["state"] == "deferred"
    failure = admin.post(f"/execution/triggers/{trigger_id}/failure", json={"error": "boom"}, headers=stranger)
    assert failure.status_code == 409


def test__event__from_a_completed_job_is_409(admin: Client, auth: Auth) -> None:
    _, trigger_id, job_id, headers = _held(admin, auth)
    assert admin.post(f"/execution/jobs/{job_id}/complete", headers=headers).status_code == 204
    assert _event(admin, trigger_id, headers, event_id="e", payload=1).status_code == 409


def test__event__retried_after_its_job_completed_answers_as_it_did(admin: Client, auth: Auth) -> None:
    # The trigger is no longer held by the caller (nor by anyone): a recorded event is still its first answer.
    _, trigger_id, job_id, headers = _held(admin, auth)
    first = _event(admin, trigger_id, headers, event_id="e1", payload=1)
    assert first.status_code == 200
    assert admin.post(f"/execution/jobs/{job_id}/complete", headers=headers).status_code == 204
    again = _event(admin, trigger_id, headers, event_id="e1", payload=1)
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "duplicate": True}
    assert _event(admin, trigger_id, headers, event_id="e2", payload=1).status_code == 409


def test__event__unknown_or_cleaned_up_trigger_is_404(admin: Client, auth: Auth) -> None:
    _, trigger_id, _, headers = _held(admin, auth)
    assert _event(admin, 999_999, headers, event_id="e", payload=1).status_code == 404
    assert _event(admin, trigger_id, headers, event_id="e1", payload=1).status_code == 200
    assert admin.post("/execution/triggers/cleanup", headers=headers).json()["deleted"] == 1
    gone = _event(admin, trigger_id, headers, event_id="e2", payload=1)
    assert gone.status_code == 404
    assert "cleaned up" in gone.json()["detail"]
    # A retry of an event applied before the cleanup still answers as it did.
    assert _event(admin, trigger_id, headers, event_id="e1", payload=1).json()["duplicate"] is True


def test__event__bad_bodies(admin: Client, auth: Auth, settings: Settings) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth)
    path = f"/execution/triggers/{trigger_id}/event"
    too_big = admin.post(
        path, json={"event_id": "e", "payload": "x" * (settings.max_event_payload_bytes + 1)}, headers=headers
    )
    assert too_big.status_code == 413
    assert too_big.json()["errors"][0]["key"] == "payload"
    not_json = admin.post(
        path, content=b'{"event_id": "e", "payload": NaN}', headers={**headers, "content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["errors"][0]["key"] == "body"
    missing = admin.post(path, json={"event_id": "e"}, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["key"] == "payload"
    bad_id = admin.post(path, json={"event_id": "a b", "payload": 1}, headers=headers)
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["key"] == "event_id"
    unknown = admin.post(path, json={"event_id": "e", "payload": 1, "triggerer_id": 3}, headers=headers)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["key"] == "triggerer_id"
    assert admin.post(path, content=b"", headers={**headers, "content-type": "application/json"}).status_code == 400
    assert admin.get(f"/api/v1/task-instances/{ti_id}").json()["state"] == "deferred"


def test__server_never_imports_a_class_named_in_a_task_payload(
    admin: Client, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth)
    imported: list[str] = []
    real_import_module, real_import = importlib.import_module, builtins.__import__

    def spy_import_module(name: str, package: str | None = None) -> Any:
        imported.append(name)
        return real_import_module(name, package)

    def spy_import(name: str, *args: Any, **kwargs: Any) -> Any:
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", spy_import_module)
    monkeypatch.setattr(builtins, "__import__", spy_import)
    payload = {
        "cmd": {"__classname__": "os.system", "__data__": "touch /tmp/pwned"},
        "evil": {"__classname__": "tocsin_evil_module_xyz.Payload", "__data__": {}},
    }
    response = _event(admin, trigger_id, headers, event_id="evil", payload=payload)
    monkeypatch.undo()
    assert response.status_code == 200, response.text
    assert not [name for name in imported if "evil" in name or name in ("os.system",)]
    assert "tocsin_evil_module_xyz" not in sys.modules
    assert admin.get(f"/api/v1/task-instances/{ti_id}").json()["next_kwargs"]["event"] == payload


def test__poison_next_kwargs_fail_the_task_instead_of_looping(admin: Client, auth: Auth, settings: Settings) -> None:
    from tests.integration.orchestration import sql

    ti_id, trigger_id, _, headers = _held(admin, auth)
    sql(settings.database_url, "UPDATE task_instance SET next_kwargs = ? WHERE trigger_id = ?", "[1, 2]", trigger_id)
    response = _event(admin, trigger_id, headers, event_id="e", payload={"ok": True})
    assert response.status_code == 200
    body = admin.get(f"/api/v1/task-instances/{ti_id}").json()
    assert (body["state"], body["next_method"]) == ("scheduled", "__fail__")
    assert "not a JSON object" in body["next_kwargs"]["error"]


def test__failure__schedules_fail_with_error_and_traceback(admin: Client, auth: Auth) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth)
    traceback = ["Traceback (most recent call last):", '  File "x.py", line 1', "ValueError: nope"]
    response = admin.post(
        f"/execution/triggers/{trigger_id}/failure",
        json={"error": "ValueError: nope", "traceback": traceback},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json() == {"trigger_id": trigger_id, "task_instances_failed": 1}
    body = admin.get(f"/api/v1/task-instances/{ti_id}").json()
    assert body["state"] == "scheduled"
    assert body["next_method"] == "__fail__"
    assert body["next_kwargs"] == {"error": "ValueError: nope", "traceback": traceback}
    assert (
        admin.post(f"/execution/triggers/{trigger_id}/failure", json={"error": "x"}, headers=headers).json()[
            "task_instances_failed"
        ]
        == 0
    )
    assert admin.post("/execution/triggers/999999/failure", json={"error": "x"}, headers=headers).status_code == 404


def test__workloads__held_triggers_only_with_a_task_instance_token(
    admin: Client, auth: Auth, settings: Settings
) -> None:
    ti_id, trigger_id, _, headers = _held(admin, auth, timeout=600)
    _, other_trigger = defer(admin, task_id="not-mine")
    response = admin.post(
        "/execution/triggers/workloads", json={"trigger_ids": [trigger_id, other_trigger, 424242]}, headers=headers
    )
    assert response.status_code == 200
    [workload] = response.json()["workloads"]
    assert workload["trigger_id"] == trigger_id
    assert workload["classpath"] == "tocsin_client.triggers.builtins.TimeDeltaTrigger"
    assert workload["kwargs"] == {"delta": {"__classname__": "datetime.timedelta", "__data__": 60.0}}
    assert workload["timeout_at"] is not None
    assert workload["task_instance"]["id"] == ti_id
    assert workload["task_instance"]["next_method"] == "execute_complete"
    principal = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").verify(workload["token"])
    assert principal.task_instance_id == ti_id
    assert principal.expires_at - time.time() <= settings.ti_token_ttl_s + 1
    ti_headers = {"Authorization": f"Bearer {workload['token']}"}
    admin.put("/execution/variables/v", json={"value": "1"})
    assert admin.get("/execution/variables/v", headers=ti_headers).status_code == 200
    assert admin.put("/execution/variables/v", json={"value": "2"}, headers=ti_headers).status_code == 403
    assert admin.post("/execution/triggers/load", json={}, headers=ti_headers).status_code == 403


def test__workloads__skip_a_trigger_that_serves_nobody(admin: Client, auth: Auth) -> None:
    _, trigger_id, _, headers = _held(admin, auth)
    assert _event(admin, trigger_id, headers, event_id="e", payload=1).status_code == 200
    response = admin.post("/execution/triggers/workloads", json={"trigger_ids": [trigger_id]}, headers=headers)
    assert response.json() == {"workloads": []}


def _token(ttl_total: float, remaining: float, scopes: str) -> str:
    now = int(time.time())
    claims = {
        "iss": "tocsin",
        "aud": "tocsin",
        "sub": scopes,
        "iat": now - int(ttl_total - remaining),
        "exp": now + int(remaining),
        "scope": scopes,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test__task_instance_token_near_expiry_is_refreshed_by_header(client: Client, auth: Auth) -> None:
    client.put("/execution/variables/v", json={"value": "1"}, headers=auth("admin", "worker"))
    scope = "ti:0193a1de-4f6b-7c2e-9f1a-2b3c4d5e6f70"
    fresh = client.get("/execution/variables/v", headers={"Authorization": f"Bearer {_token(900, 800, scope)}"})
    assert fresh.status_code == 200
    assert "refreshed-api-token" not in fresh.headers
    old = _token(900, 60, scope)
    aging = client.get("/execution/variables/v", headers={"Authorization": f"Bearer {old}"})
    assert aging.status_code == 200
    renewed = aging.headers["refreshed-api-token"]
    principal = TokenAuthority(SECRET, issuer="tocsin", audience="tocsin").verify(renewed)
    assert principal.scopes == {scope}
    assert principal.expires_at - time.time() > 800
    again = client.get("/execution/variables/v", headers={"Authorization": f"Bearer {old}"})
    assert again.headers["refreshed-api-token"] == renewed  # one refresh per old token
    operator = client.get("/execution/variables/v", headers={"Authorization": f"Bearer {_token(900, 60, 'worker')}"})
    assert "refreshed-api-token" not in operator.headers


@pytest.fixture
def with_duties(settings: Settings, auth: Auth) -> Iterator[Client]:
    app = create_app(replace(settings, timeout_check_interval_s=0.1, cleanup_interval_s=0.1))
    with TestClient(app) as client:
        client.headers.update(auth("admin", "worker"))
        yield client


def test__timeouts__the_server_fails_expired_deferrals_by_itself(with_duties: Client) -> None:
    ti_id, _ = defer(with_duties, timeout=0)
    waiting, _ = defer(with_duties, task_id="waits", timeout=3600)

    def failed() -> bool:
        return bool(with_duties.get(f"/api/v1/task-instances/{ti_id}").json()["state"] == "scheduled")

    eventually(failed)
    body = with_duties.get(f"/api/v1/task-instances/{ti_id}").json()
    assert body["next_method"] == "__fail__"
    assert body["next_kwargs"]["error"] == "trigger timeout"
    assert body["trigger_id"] is None
    assert with_duties.get(f"/api/v1/task-instances/{waiting}").json()["state"] == "deferred"
    # The periodic cleanup then removes the trigger nobody uses any more.
    eventually(lambda: len(with_duties.get("/api/v1/triggers").json()["triggers"]) == 1)


def test__admin_triggers_list_shows_holder_and_consumers(admin: Client, auth: Auth) -> None:
    ti_id, trigger_id, job_id, _ = _held(admin, auth)
    [listed] = admin.get("/api/v1/triggers").json()["triggers"]
    assert listed["id"] == trigger_id
    assert listed["triggerer_id"] == job_id
    assert listed["task_instance_ids"] == [ti_id]
    [job] = admin.get("/api/v1/jobs").json()["jobs"]
    assert job["trigger_count"] == 1
