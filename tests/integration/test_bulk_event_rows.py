"""One bulk event batch mixing every kind of item, checked row by row on both databases (issue 11, item 6).

The bulk path writes the task instances it moves set-based (one UPDATE for the batch), so each row must still get
exactly what its own event says: a resume keeps its next_method and splices the payload, poison fails, terminal
types end with their XComs, a trigger held by another job or unknown changes nothing, duplicates (earlier or in
the same batch) apply once, and the change log gets one row per moved task instance with its reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.config import Settings

from tests.integration.orchestration import defer, load, register, sql

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]


def _uuid(stored: Any) -> str:
    """A stored task-instance id as text: 16 bytes on SQLite, a native uuid on PostgreSQL."""
    return str(uuid.UUID(bytes=stored) if isinstance(stored, bytes) else uuid.UUID(str(stored)))


def _row(url: str, ti_id: str) -> dict[str, Any]:
    """The stored columns an event writes, read straight from the table."""
    for row in sql(url, "SELECT id, state, next_method, next_kwargs, trigger_id, trigger_timeout FROM task_instance"):
        if _uuid(row[0]) == ti_id:
            return dict(
                zip(("id", "state", "next_method", "next_kwargs", "trigger_id", "trigger_timeout"), row, strict=True)
            )
    raise AssertionError(f"no task instance {ti_id}")


def _changes(url: str) -> dict[str, list[tuple[str, str, str]]]:
    rows = sql(url, "SELECT version, task_instance_id, previous_state, state, reason FROM task_instance_change")
    by_ti: dict[str, list[tuple[str, str, str]]] = {}
    for row in sorted(rows, key=lambda r: int(r[0])):
        by_ti.setdefault(_uuid(row[1]), []).append((row[2], row[3], row[4]))
    return by_ti


def test__one_batch_mixing_every_kind_of_item_writes_each_row_as_its_own_event_says(
    admin: Client, auth: Auth, settings: Settings
) -> None:
    url = settings.database_url
    foreign, foreign_trigger = defer(admin, task_id="foreign")
    _, other = register(admin, auth, capacity=1)
    assert load(admin, other)["trigger_ids"] == [foreign_trigger]
    resumed, resumed_trigger = defer(admin, task_id="resumed", next_kwargs={"k": 1}, timeout=600)
    sibling, _ = defer(admin, task_id="sibling", next_kwargs={"s": [1, 2]})
    poison, poison_trigger = defer(admin, task_id="poison")
    failed, failed_trigger = defer(admin, task_id="failed")
    skipped, skipped_trigger = defer(admin, task_id="skipped")
    earlier, earlier_trigger = defer(admin, task_id="earlier")
    # Two task instances on one trigger: one event moves both, each with its own stored kwargs.
    sql(url, "UPDATE task_instance SET trigger_id = ? WHERE task_id = 'sibling'", resumed_trigger)
    sql(url, "UPDATE task_instance SET next_kwargs = ? WHERE trigger_id = ?", "[1, 2]", poison_trigger)
    _, headers = register(admin, auth)
    held = load(admin, headers)["trigger_ids"]
    assert {resumed_trigger, poison_trigger, failed_trigger, skipped_trigger, earlier_trigger} <= set(held)
    assert foreign_trigger not in held
    first = admin.post(
        "/execution/triggers/events",
        json={"events": [{"trigger_id": earlier_trigger, "event_id": "early", "payload": {"at": 0}}]},
        headers=headers,
    )
    assert first.json()["results"][0]["task_instances_resumed"] == 1
    logged_before = {ti: len(rows) for ti, rows in _changes(url).items()}

    events = [
        {"trigger_id": poison_trigger, "event_id": "p", "payload": {"ok": True}},
        {"trigger_id": resumed_trigger, "event_id": "r", "payload": {"n": 1, "text": "é\u2603"}},
        {"trigger_id": foreign_trigger, "event_id": "f", "payload": 1},
        {
            "trigger_id": failed_trigger,
            "event_id": "x",
            "event_type": "task_failed",
            "payload": None,
            "xcoms": {"reason": {"code": 7}},
        },
        {"trigger_id": 999_999, "event_id": "u", "payload": 1},
        {"trigger_id": earlier_trigger, "event_id": "early", "payload": {"at": 1}},
        {"trigger_id": resumed_trigger, "event_id": "r", "payload": {"n": "again"}},
        {"trigger_id": skipped_trigger, "event_id": "s", "event_type": "task_skipped", "payload": None},
        {"trigger_id": resumed_trigger, "event_id": "r2", "payload": {"n": 2}},
    ]
    response = admin.post("/execution/triggers/events", json={"events": events}, headers=headers)
    assert response.status_code == 200, response.text
    answers = [
        (r["event_id"], r["status"], r["duplicate"], r["task_instances_resumed"]) for r in response.json()["results"]
    ]
    assert answers == [
        ("p", 200, False, 1),
        ("r", 200, False, 2),
        ("f", 409, False, 0),
        ("x", 200, False, 1),
        ("u", 404, False, 0),
        ("early", 200, True, 1),  # recorded by the earlier batch: answered as then
        ("r", 200, True, 2),  # the same event twice in one batch: applied once
        ("s", 200, False, 1),
        ("r2", 200, False, 0),  # a later event of a trigger whose task instances already moved
    ]

    row = _row(url, resumed)
    assert (row["state"], row["next_method"], row["trigger_id"], row["trigger_timeout"]) == (
        "scheduled",
        "execute_complete",
        None,
        None,
    )
    assert admin.get(f"/api/v1/task-instances/{resumed}").json()["next_kwargs"] == {
        "k": 1,
        "event": {"n": 1, "text": "é\u2603"},
    }
    assert admin.get(f"/api/v1/task-instances/{sibling}").json()["next_kwargs"] == {
        "s": [1, 2],
        "event": {"n": 1, "text": "é\u2603"},
    }
    row = _row(url, poison)
    assert (row["state"], row["next_method"], row["trigger_id"]) == ("scheduled", "__fail__", None)
    assert "not a JSON object" in admin.get(f"/api/v1/task-instances/{poison}").json()["next_kwargs"]["error"]
    for ti_id, state in ((failed, "failed"), (skipped, "skipped")):
        row = _row(url, ti_id)
        assert (row["state"], row["next_method"], row["next_kwargs"], row["trigger_id"]) == (state, None, None, None)
    assert admin.get("/execution/xcoms/etl/r1/failed/reason").json()["value"] == {"code": 7}
    assert admin.get(f"/api/v1/task-instances/{earlier}").json()["next_kwargs"]["event"] == {"at": 0}
    row = _row(url, foreign)
    assert (row["state"], row["trigger_id"]) == ("deferred", foreign_trigger)

    logged = _changes(url)
    new = {ti: rows[logged_before.get(ti, 0) :] for ti, rows in logged.items()}
    assert new[resumed] == [("deferred", "scheduled", "resumed")]
    assert new[sibling] == [("deferred", "scheduled", "resumed")]
    assert new[poison] == [("deferred", "scheduled", "trigger-failed")]
    assert new[failed] == [("deferred", "failed", "ended")]
    assert new[skipped] == [("deferred", "skipped", "ended")]
    assert new[earlier] == []
    assert new[foreign] == []
    recorded = sql(
        url, "SELECT event_id, task_instances_resumed FROM trigger_event WHERE trigger_id = ?", resumed_trigger
    )
    assert sorted(recorded) == [("r", 2), ("r2", 0)]
