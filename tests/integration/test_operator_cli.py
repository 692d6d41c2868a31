"""``tocsin triggers list``, ``jobs list`` and ``logs [--follow]`` run as real processes against a real server with
real triggers and jobs, as an operator would run them: tables, JSON (parsed and checked), refused tokens, Ctrl-C.

The commands are API clients with no database of their own; the server's database matters to the API tests
(tests/integration/test_operator_api.py, both backends), so these run on SQLite only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.operator_env import OperatorEnv, log_line, operator_server, ops, token
from tests.integration.orchestration import age_job

__all__ = ["operator_server", "ops"]

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ADMIN_SCOPE_LINE = "this command needs a token with the 'admin' scope"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("TOCSIN_TOKEN", "TOCSIN_API_URL")}


def tocsin(
    ops: OperatorEnv, *args: str, tok: str | None = "admin", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``tocsin ARGS`` against the test server (``tok``: the scope of the token passed, None for no token)."""
    auth = [] if tok is None else ["--token", token(tok)]
    return subprocess.run(
        [sys.executable, "-m", "tocsin_cli", *args, "--api-url", ops.url, *auth],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd=cwd,
        check=False,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _cells(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def test__triggers_list__table_and_json(ops: OperatorEnv) -> None:
    ti_a, _ = ops.defer("a")
    ops.defer("b")
    dead = ops.job(capacity=1, hostname="gone-host")
    [orphan] = dead.trigger_ids
    age_job(ops.database_url, dead.job_id)
    ops.ship(dead, [log_line(orphan, None, "poll failed:\nconnection refused", "error")])

    table = tocsin(ops, "triggers", "list")
    assert table.returncode == 0, table.stderr
    rows = _cells(table.stdout)
    assert rows[0] == ["ID", "STATE", "JOB", "AGE", "TASK", "INSTANCE", "CLASSPATH", "LAST", "ERROR"]
    by_id = {row[0]: row for row in rows[1:]}
    assert len(by_id) == 2
    assert by_id[str(orphan)][1:3] == ["orphaned", str(dead.job_id)]
    assert by_id[str(orphan)][3].endswith("s")  # an age such as 0s or 2s
    assert "error: poll failed: connection refused" in table.stdout  # one line per trigger
    assert len(table.stdout.splitlines()) == 3
    [free] = set(by_id) - {str(orphan)}
    assert by_id[free][1:3] == ["unassigned", "-"]

    listed = _json(tocsin(ops, "triggers", "list", "--output", "json"))
    assert listed["total"] == 2
    states = {t["id"]: t["state"] for t in listed["triggers"]}
    assert states == {orphan: "orphaned", int(free): "unassigned"}
    [mine] = [t for t in listed["triggers"] if t["id"] == orphan]
    assert mine["last_error"]["event"] == "poll failed:\nconnection refused"
    assert mine["triggerer_id"] == dead.job_id
    assert ti_a in {ti for t in listed["triggers"] for ti in t["task_instance_ids"]}

    only = _json(tocsin(ops, "triggers", "list", "--output", "json", "--state", "orphaned"))
    assert [t["id"] for t in only["triggers"]] == [orphan]
    by_job = _json(tocsin(ops, "triggers", "list", "--output", "json", "--job-id", str(dead.job_id)))
    assert [t["id"] for t in by_job["triggers"]] == [orphan]
    paged = tocsin(ops, "triggers", "list", "--limit", "1")
    assert len(paged.stdout.splitlines()) == 2
    assert paged.stderr == "showing 1 of 2 triggers; use --limit and --offset for more\n"


def test__jobs_list__table_and_json(ops: OperatorEnv) -> None:
    ops.defer("a")
    dead = ops.job(capacity=5, hostname="old-host")
    live = ops.job(capacity=7, hostname="new-host")
    age_job(ops.database_url, dead.job_id, seconds=7200)

    table = tocsin(ops, "jobs", "list")
    assert table.returncode == 0, table.stderr
    rows = _cells(table.stdout)
    assert rows[0] == ["ID", "STATE", "ALIVE", "HOST", "PID", "TRIGGERS", "HEARTBEAT", "STARTED"]
    assert [row[:6] for row in rows[1:]] == [
        [str(live.job_id), "running", "yes", "new-host", "42", "0/7"],
        [str(dead.job_id), "running", "no", "old-host", "42", "1/5"],
    ]
    assert rows[2][6:8] == ["2h", "ago"]

    listed = _json(tocsin(ops, "jobs", "list", "--output", "json", "--alive"))
    assert [j["id"] for j in listed["jobs"]] == [live.job_id]
    assert listed["jobs"][0]["alive"] is True
    assert listed["jobs"][0]["heartbeat_age_s"] < 60
    failed = _json(tocsin(ops, "jobs", "list", "--output", "json", "--state", "failed"))
    assert failed == {"jobs": [], "total": 0}


def test__logs__table_and_json_lines(ops: OperatorEnv) -> None:
    ti, trigger = ops.defer("a")
    held = ops.job(capacity=1)
    ops.ship(held, [log_line(trigger, ti, "waiting"), log_line(trigger, ti, "gave up", "warning")])

    text = tocsin(ops, "logs", ti)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[1:6] == ["INFO", "try", "1", "trigger", str(trigger)]
    assert lines[0].endswith("  waiting")
    assert lines[1].split()[1] == "WARNING"

    parsed = [json.loads(line) for line in tocsin(ops, "logs", ti, "--output", "json").stdout.splitlines()]
    assert [(p["level"], p["event"], p["job_id"]) for p in parsed] == [
        ("info", "waiting", held.job_id),
        ("warning", "gave up", held.job_id),
    ]
    assert parsed[0]["id"] < parsed[1]["id"]
    empty = tocsin(ops, "logs", "0193a1de-4f6b-7c2e-9f1a-2b3c4d5e6f70")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "")


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes], deadline_s: float = 20) -> list[str]:
    deadline = time.monotonic() + deadline_s
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines()
        if len(lines) >= count:
            return lines
        assert process.poll() is None, f"the follower exited with {process.returncode}"
        time.sleep(0.05)
    msg = f"{count} lines not printed within {deadline_s} s: {lines}"
    raise AssertionError(msg)


def test__logs_follow__prints_new_lines_once_in_order_and_exits_0_on_ctrl_c(ops: OperatorEnv, tmp_path: Path) -> None:
    ti, trigger = ops.defer("a")
    held = ops.job(capacity=1)
    ops.ship(held, [log_line(trigger, ti, "before 0"), log_line(trigger, ti, "before 1")])
    out, err = tmp_path / "out.jsonl", tmp_path / "err.txt"
    command = [sys.executable, "-m", "tocsin_cli", "logs", ti, "--follow", "--output", "json", "--interval", "0.1"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--api-url", ops.url, "--token", token("admin")], stdout=stdout, stderr=stderr, env=_env()
        )
    try:
        _wait_for_lines(out, 2, process)
        ops.ship(held, [log_line(trigger, ti, "after 0")])
        _wait_for_lines(out, 3, process)
        ops.ship(held, [log_line(trigger, ti, f"burst {n}") for n in range(3)])
        lines = _wait_for_lines(out, 6, process)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events = [json.loads(line)["event"] for line in out.read_text().splitlines()]
    assert events == ["before 0", "before 1", "after 0", "burst 0", "burst 1", "burst 2"]
    assert len(lines) == 6
    assert err.read_text() == ""  # quiet: no traceback, no message


def test__no_token__is_the_servers_401_in_one_line_naming_the_scope(ops: OperatorEnv, tmp_path: Path) -> None:
    result = tocsin(ops, "triggers", "list", tok=None, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("tocsin triggers list: the server refused the token (401: ")
    assert ADMIN_SCOPE_LINE in line


def test__a_token_without_admin__is_the_servers_403_in_one_line_naming_the_scope(ops: OperatorEnv) -> None:
    for args in (("jobs", "list"), ("logs", "0193a1de-4f6b-7c2e-9f1a-2b3c4d5e6f70", "--follow")):
        result = tocsin(ops, *args, tok="worker")
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert "(403: this operation needs a token with scope 'admin')" in line
        assert ADMIN_SCOPE_LINE in line


def test__the_standalone_admin_token_file__is_used_without_a_token(ops: OperatorEnv, tmp_path: Path) -> None:
    ops.job(capacity=1)
    (tmp_path / "tocsin-admin-token").write_text(token("admin") + "\n")
    listed = _json(tocsin(ops, "jobs", "list", "--output", "json", tok=None, cwd=tmp_path))
    assert listed["total"] == 1


def test__a_reader_that_goes_away__ends_the_command_quietly(ops: OperatorEnv) -> None:
    ti, trigger = ops.defer("a")
    held = ops.job(capacity=1)
    for batch in range(2):  # more than a pipe's buffer holds
        ops.ship(held, [log_line(trigger, ti, f"line {batch}-{n} " + "x" * 80) for n in range(1000)])
    process = subprocess.Popen(
        [sys.executable, "-m", "tocsin_cli", "logs", ti, "--api-url", ops.url, "--token", token("admin")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        assert "  line 0-0 x" in process.stdout.readline().decode()  # what `| head -1` reads
        process.stdout.close()
        assert process.wait(timeout=30) == 0
        assert process.stderr.read() == b""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
