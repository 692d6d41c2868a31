"""``deferral`` and ``Client.defer_task_instance``: the deferred body comes from the trigger object itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest
from tocsin_client import AsyncClient, Client, deferral, serde
from tocsin_client.triggers import BaseTrigger, DateTimeTrigger, TimeDeltaTrigger, TriggerEvent

TI_ID = UUID("0193a1de-4f6b-7c2e-9f1a-2b3c4d5e6f70")
MOMENT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
DEFERRED_TI = {
    "id": str(TI_ID),
    "dag_id": "d",
    "run_id": "r",
    "task_id": "t",
    "map_index": -1,
    "try_number": 1,
    "state": "deferred",
    "trigger_id": 1,
    "trigger_timeout": None,
    "next_method": "execute_complete",
    "next_kwargs": {},
    "start_from_trigger": False,
}


class Opaque:
    """A kwarg serde cannot encode: not registered."""


class Named(BaseTrigger):
    def __init__(self, classpath: str, **kwargs: Any) -> None:
        self.classpath = classpath
        self.kwargs = kwargs

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self.classpath, self.kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(None)


def test__deferral__takes_classpath_and_serde_kwargs_from_the_trigger() -> None:
    body = deferral(DateTimeTrigger(MOMENT))

    assert body.classpath == "tocsin_client.triggers.DateTimeTrigger"
    assert body.trigger_kwargs == {"moment": serde.serialize(MOMENT)}
    assert serde.deserialize(body.trigger_kwargs) == {"moment": MOMENT}
    assert body.next_method == "execute_complete"
    assert body.trigger_timeout is None
    assert msgspec.json.decode(msgspec.json.encode(body)) == {
        "state": "deferred",
        "classpath": "tocsin_client.triggers.DateTimeTrigger",
        "trigger_kwargs": {"moment": serde.serialize(MOMENT)},
        "next_method": "execute_complete",
        "trigger_timeout": None,
    }


def test__deferral__encodes_next_kwargs_and_takes_a_timedelta_timeout() -> None:
    body = deferral(
        TimeDeltaTrigger(timedelta(seconds=5)),
        next_method="resume",
        next_kwargs={"since": MOMENT, "n": 1},
        trigger_timeout=timedelta(minutes=2),
    )

    assert body.next_method == "resume"
    assert body.next_kwargs == {"since": serde.serialize(MOMENT), "n": 1}
    assert body.trigger_timeout == 120.0
    assert deferral(TimeDeltaTrigger(timedelta(seconds=5)), trigger_timeout=30).trigger_timeout == 30.0


def test__deferral__of_a_class_in_main__says_the_triggerer_cannot_import_it() -> None:
    with pytest.raises(ValueError, match=r"__main__.*PYTHONPATH"):
        deferral(Named("__main__.Named"))


def test__deferral__of_a_bare_name__asks_for_a_dotted_path() -> None:
    with pytest.raises(ValueError, match="not a dotted path"):
        deferral(Named("Named"))


def test__deferral__of_unencodable_kwargs__raises_serialization_error() -> None:
    with pytest.raises(serde.SerializationError, match="register"):
        deferral(Named("pkg.Named", thing=Opaque()))


def test__defer_task_instance__patches_the_state_with_the_deferral() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=DEFERRED_TI)

    with Client("http://tocsin.test", token="t", transport=httpx.MockTransport(handler)) as client:
        ti = client.defer_task_instance(TI_ID, DateTimeTrigger(MOMENT), trigger_timeout=60)

    assert ti.trigger_id == 1
    [request] = seen
    assert request.method == "PATCH"
    assert request.url.path == f"/execution/task-instances/{TI_ID}/state"
    assert msgspec.json.decode(request.content) == msgspec.to_builtins(
        deferral(DateTimeTrigger(MOMENT), trigger_timeout=60)
    )


async def test__async_defer_task_instance__patches_the_state_with_the_deferral() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=DEFERRED_TI)

    async with AsyncClient("http://tocsin.test", token="t", transport=httpx.MockTransport(handler)) as client:
        ti = await client.defer_task_instance(TI_ID, DateTimeTrigger(MOMENT), next_method="go")

    assert ti.id == TI_ID
    assert msgspec.json.decode(seen[0].content)["next_method"] == "go"
    assert msgspec.json.decode(seen[0].content)["classpath"] == "tocsin_client.triggers.DateTimeTrigger"


def test__deferral__sends_start_from_trigger_only_when_asked() -> None:
    # Left out by default, so an ordinary deferral is a body every API version accepts (older ones refuse the field).
    assert "start_from_trigger" not in msgspec.json.decode(msgspec.json.encode(deferral(DateTimeTrigger(MOMENT))))
    started = deferral(DateTimeTrigger(MOMENT), start_from_trigger=True)
    assert msgspec.json.decode(msgspec.json.encode(started))["start_from_trigger"] is True


def test__defer_task_instance__starts_from_the_trigger_in_one_call() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={**DEFERRED_TI, "start_from_trigger": True})

    with Client("http://tocsin.test", token="t", transport=httpx.MockTransport(handler)) as client:
        ti = client.defer_task_instance(TI_ID, DateTimeTrigger(MOMENT), start_from_trigger=True)

    assert ti.start_from_trigger is True
    sent = msgspec.json.decode(seen[0].content)
    assert (sent["state"], sent["start_from_trigger"]) == ("deferred", True)


async def test__async_defer_task_instance__starts_from_the_trigger_in_one_call() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={**DEFERRED_TI, "start_from_trigger": True})

    async with AsyncClient("http://tocsin.test", token="t", transport=httpx.MockTransport(handler)) as client:
        ti = await client.defer_task_instance(TI_ID, DateTimeTrigger(MOMENT), start_from_trigger=True)

    assert ti.start_from_trigger is True
    assert msgspec.json.decode(seen[0].content)["start_from_trigger"] is True


def code_lines(text: str) -> list[str]:
    """Lines of Python without blank lines, comments and trailing comments, stripped."""
    lines = (line.split("  # ", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test__docs_triggers_md__shows_the_tested_example_module() -> None:
    # docs/triggers.md quotes docs/examples/my_triggers.py, which tests/triggerer/test_custom_trigger.py runs.
    repo = Path(__file__).resolve().parents[2]
    doc = (repo / "docs" / "triggers.md").read_text()
    quoted = doc.split("```python\n", 1)[1].split("```", 1)[0]
    module = set(code_lines((repo / "docs" / "examples" / "my_triggers.py").read_text()))
    missing = [line for line in code_lines(quoted) if line not in module]
    assert missing == [], missing
