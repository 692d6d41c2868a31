"""2027-01-01's operator surface on a real server, SQLite and PostgreSQL: the trigger and job filters and fields,
the log cursor, unknown query parameters refused (and older versions, which ignore them, unchanged)."""

from __future__ import annotations

import pytest

from tests.integration.operator_env import OperatorEnv, log_line, operator_server, ops
from tests.integration.orchestration import age_job

__all__ = ["operator_server", "ops"]

V1215 = {"Tocsin-API-Version": "2026-12-15"}
OTHER = "tocsin_client.triggers.builtins.DateTimeTrigger"


def _ids(ops: OperatorEnv, **params: object) -> list[int]:
    response = ops.admin.get("/api/v1/triggers", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["triggers"])
    return [t["id"] for t in body["triggers"]]


def test__triggers__filter_by_state_job_and_classpath_and_carry_state_age_and_last_error(ops: OperatorEnv) -> None:
    ti1, t1 = ops.defer("a")
    _, t2 = ops.defer("b")
    ti3, t3 = ops.defer("c")
    dead = ops.job(capacity=1)  # claims one of them, then stops heartbeating
    live = ops.job(capacity=1)  # claims another
    [orphan], [held] = dead.trigger_ids, live.trigger_ids
    [free] = {t1, t2, t3} - {orphan, held}
    age_job(ops.database_url, dead.job_id)
    ops.ship(dead, [log_line(orphan, None, "first failure", "error"), log_line(orphan, None, "still fine")])
    ops.ship(dead, [log_line(orphan, None, "second failure", "critical"), log_line(orphan, None, "info again")])

    assert _ids(ops, state="orphaned") == [orphan]
    assert _ids(ops, state="assigned") == [held]
    assert _ids(ops, state="unassigned") == [free]
    assert _ids(ops, job_id=dead.job_id) == [orphan]
    assert _ids(ops, job_id=live.job_id, state="orphaned") == []  # filters combine
    assert _ids(ops, classpath=OTHER) == []
    assert _ids(ops, classpath="tocsin_client.triggers.builtins.TimeDeltaTrigger") == sorted([t1, t2, t3])

    body = ops.admin.get("/api/v1/triggers").json()
    by_id = {t["id"]: t for t in body["triggers"]}
    assert {i: t["state"] for i, t in by_id.items()} == {orphan: "orphaned", held: "assigned", free: "unassigned"}
    assert by_id[orphan]["triggerer_id"] == dead.job_id
    assert by_id[free]["triggerer_id"] is None
    assert by_id[t1]["task_instance_ids"] == [ti1]
    assert all(0 <= t["age_s"] < 120 for t in by_id.values())
    error = by_id[orphan]["last_error"]
    assert (error["level"], error["event"], error["task_instance_id"]) == ("critical", "second failure", None)
    assert by_id[held]["last_error"] is None
    ops.ship(live, [log_line(held, ti3 if held == t3 else None, "boom", "error")])
    assert (
        ops.admin.get("/api/v1/triggers", params={"state": "assigned"}).json()["triggers"][0]["last_error"]["event"]
        == "boom"
    )


def test__jobs__filter_by_state_and_liveness_and_carry_the_heartbeat_age(ops: OperatorEnv) -> None:
    dead = ops.job(capacity=1)
    live = ops.job(capacity=1)
    age_job(ops.database_url, dead.job_id, seconds=600)

    def ids(**params: object) -> list[int]:
        return [j["id"] for j in ops.admin.get("/api/v1/jobs", params=params).json()["jobs"]]

    assert ids() == [live.job_id, dead.job_id]  # newest first
    assert ids(alive="true") == [live.job_id]
    assert ids(alive="false") == [dead.job_id]
    assert ids(state="running") == [live.job_id, dead.job_id]  # dead, but not reaped: still running
    assert ids(state="failed") == []
    jobs = {j["id"]: j for j in ops.admin.get("/api/v1/jobs").json()["jobs"]}
    assert 600 <= jobs[dead.job_id]["heartbeat_age_s"] < 700
    assert 0 <= jobs[live.job_id]["heartbeat_age_s"] < 60


def test__logs__the_cursor_returns_each_line_once_in_order(ops: OperatorEnv) -> None:
    ti, trigger = ops.defer("a")
    held = ops.job(capacity=1)
    ops.ship(held, [log_line(trigger, ti, f"line {n}") for n in range(5)])
    path = f"/api/v1/task-instances/{ti}/logs"
    first = ops.admin.get(path, params={"limit": 2}).json()["lines"]
    assert [line["event"] for line in first] == ["line 0", "line 1"]
    rest = ops.admin.get(path, params={"after": first[-1]["id"]}).json()
    assert [line["event"] for line in rest["lines"]] == ["line 2", "line 3", "line 4"]
    assert rest["total"] == 3
    ids = [line["id"] for line in first + rest["lines"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert ops.admin.get(path, params={"after": ids[-1]}).json() == {"lines": [], "total": 0}


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/api/v1/triggers", "bogus=1", ["bogus"]),
        ("/api/v1/triggers", "state=assigned&holder=3&zzz", ["holder", "zzz"]),
        ("/api/v1/jobs", "limt=5", ["limt"]),
        ("/health", "verbose=1", ["verbose"]),
        ("/execution/variables/greeting", "default=x", ["default"]),
    ],
)
def test__unknown_query_parameters__are_400_naming_them_from_2027_01_01(
    ops: OperatorEnv, path: str, query: str, named: list[str]
) -> None:
    response = ops.admin.get(f"{path}?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["tocsin-api-version"] == "2027-01-01"
    body = response.json()
    assert body["type"] == "urn:tocsin:problem:validation"
    assert [(e["key"], e["source"]) for e in body["errors"]] == [(name, "query") for name in named]
    for name in named:
        assert repr(name) in body["detail"]


def test__a_bad_filter_value__is_400_naming_it(ops: OperatorEnv) -> None:
    for path, query in (("/api/v1/triggers", "state=stuck"), ("/api/v1/jobs", "alive=maybe")):
        response = ops.admin.get(f"{path}?{query}")
        assert response.status_code == 400, response.text
        assert [e["key"] for e in response.json()["errors"]] == [query.split("=")[0]]


def test__2026_12_15__ignores_unknown_and_new_parameters_and_gets_no_new_fields(ops: OperatorEnv) -> None:
    ti, _ = ops.defer("a")
    _, other = ops.defer("b")
    held = ops.job(capacity=1)
    ops.ship(held, [log_line(held.trigger_ids[0], ti, "hello")])
    triggers = ops.admin.get("/api/v1/triggers?state=stuck&job_id=999&bogus=1", headers=V1215)
    assert triggers.status_code == 200, triggers.text
    assert triggers.headers["tocsin-api-version"] == "2026-12-15"
    body = triggers.json()
    assert body["total"] == 2  # the filters were unknown then: every trigger
    assert {frozenset(t) for t in body["triggers"]} == {
        frozenset({"id", "classpath", "created_date", "triggerer_id", "task_instance_ids", "asset_watcher_count"})
    }
    assert int(triggers.headers["content-length"]) == len(triggers.content)
    jobs = ops.admin.get("/api/v1/jobs?state=failed&alive=false", headers=V1215).json()
    assert [j["id"] for j in jobs["jobs"]] == [held.job_id]
    assert "heartbeat_age_s" not in jobs["jobs"][0]
    lines = ops.admin.get(f"/api/v1/task-instances/{ti}/logs?after=999999&x=1", headers=V1215).json()["lines"]
    assert [line["event"] for line in lines] == ["hello"]
    assert "id" not in lines[0]
    assert other not in held.trigger_ids
