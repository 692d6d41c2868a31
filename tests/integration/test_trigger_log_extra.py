"""``shipTriggerLogs`` takes ``lines[].extra`` only as the object the spec says, and stores it as received
(issue 7, B11). Before the fix a string or a list was stored and then served by the logs endpoint in breach of
its response schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.integration.orchestration import defer, load, register

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]
JSON = {"content-type": "application/json"}


def _line(trigger_id: int, ti_id: str, extra: bytes) -> bytes:
    return (
        b'{"trigger_id": %d, "task_instance_id": "%s", "try_number": 1, "timestamp": "2026-11-28T10:00:01Z",'
        b' "level": "info", "event": "e", "extra": %s}' % (trigger_id, ti_id.encode(), extra)
    )


@pytest.fixture
def held(admin: Client, auth: Auth) -> tuple[str, int, dict[str, str]]:
    ti_id, trigger_id = defer(admin)
    _, headers = register(admin, auth)
    assert trigger_id in load(admin, headers)["trigger_ids"]
    return ti_id, trigger_id, headers


@pytest.mark.parametrize(
    ("extra", "kind"),
    [
        (b'"a string"', "str"),
        (b"[1, 2]", "array"),
        (b"[]", "array"),
        (b"42", "number"),
        (b"-1.5", "number"),
        (b"true", "bool"),
        (b"null", "null"),
    ],
)
def test__extra_that_is_not_an_object__is_422_naming_the_line_and_nothing_is_stored(
    admin: Client, held: tuple[str, int, dict[str, str]], extra: bytes, kind: str
) -> None:
    ti_id, trigger_id, headers = held
    good = _line(trigger_id, ti_id, b'{"ok": 1}')
    body = b'{"lines": [' + good + b", " + _line(trigger_id, ti_id, extra) + b"]}"
    response = admin.post("/execution/triggers/logs", content=body, headers={**headers, **JSON})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["key"] == "lines[1].extra"
    assert kind in error["message"]
    assert admin.get(f"/api/v1/task-instances/{ti_id}/logs").json()["total"] == 0  # the whole batch is refused


def test__an_object_extra__is_stored_as_received_and_served_as_an_object(
    admin: Client, held: tuple[str, int, dict[str, str]]
) -> None:
    ti_id, trigger_id, headers = held
    extras: list[Any] = [{}, {"attempt": 2, "nested": {"deep": [1, "two", None]}, "ratio": 1.5}]
    body = b'{"lines": [%s, %s]}' % (
        _line(trigger_id, ti_id, b"  {}"),
        _line(trigger_id, ti_id, b'{ "attempt": 2, "nested": {"deep": [1, "two", null]}, "ratio": 1.5 }'),
    )
    response = admin.post("/execution/triggers/logs", content=body, headers={**headers, **JSON})
    assert response.status_code == 200, response.text
    lines = admin.get(f"/api/v1/task-instances/{ti_id}/logs").json()["lines"]  # validated against the spec
    assert [line["extra"] for line in lines] == extras
