"""The log pipeline of a real ``tocsin api-server`` process: JSON lines with the request fields and a library's
warning in the same format (one worker and several), console lines for people, and a bad log setting answered
with one line and exit code 2 by every command that logs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import sqlite_database
from harness.live_server import free_port, live_server
from tests.conftest import SECRET

TOCSIN = [sys.executable, "-m", "tocsin_cli"]


def parsed_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of ``log`` as JSON (a line that is not JSON fails the test, naming it)."""
    lines = []
    for line in log.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return lines


def wait_for_line(
    log: Path, match: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 10
) -> dict[str, Any]:
    """The first JSON line of ``log`` that ``match`` accepts, polled for (the line is written after the response)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [line for line in parsed_lines(log) if match(line)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Any:
    with sqlite_database(tmp_path) as url:
        yield url


@pytest.mark.parametrize("workers", ["1", "2"])
def test__json_lines__carry_the_request_fields_and_a_library_warning(
    tmp_path: Path, sqlite_url: str, authority: TokenAuthority, workers: str
) -> None:
    log = tmp_path / "server.log"
    token = authority.issue("logs", ["admin", "worker"], 600)
    env = {"TOCSIN_LOG_FORMAT": "json", "TOCSIN_WORKERS": workers}
    with live_server(sqlite_url, SECRET, log, env) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "req-42.a:b"}
        assert http.put("/execution/variables/colour", json={"value": "blue"}, headers=headers).status_code == 200
        insane = {"Authorization": f"Bearer {token}", "X-Request-ID": "no spaces allowed " + "x" * 200}
        assert http.get("/execution/variables/colour", headers=insane).status_code == 200
        assert http.get("/execution/variables/colour").status_code == 401  # refused by the auth middleware

        given = wait_for_line(log, lambda line: line.get("request_id") == "req-42.a:b", "line of the named request")
        assert given["event"] == "request"
        assert given["logger"] == "tocsin.server.requests"
        assert given["level"] == "info"
        assert given["operation_id"] == "putVariable"
        assert given["method"] == "PUT"
        assert given["path"] == "/execution/variables/colour"
        assert given["status"] == 200
        assert isinstance(given["duration_ms"], float | int)
        assert given["duration_ms"] >= 0

        def read(status: int) -> Callable[[dict[str, Any]], bool]:
            return lambda line: line.get("operation_id") == "getVariable" and line.get("status") == status

        generated = wait_for_line(log, read(200), "line of the read")
        assert re.fullmatch(r"[0-9a-f]{32}", generated["request_id"]), generated  # the insane id was replaced
        refused = wait_for_line(log, read(401), "line of the refused read")
        assert refused["request_id"] != generated["request_id"]

        # uvicorn warns through its own logger when a request is not HTTP: the line has our timestamp and format
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert raw.recv(64).startswith(b"HTTP/1.1 400")
        warning = wait_for_line(
            log, lambda line: line.get("logger") == "uvicorn.error" and line["level"] == "warning", "library warning"
        )
        assert warning["event"] == "Invalid HTTP request received."
    lines = parsed_lines(log)
    for line in lines:
        assert {"timestamp", "level", "event"} <= line.keys(), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"]), line
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # uvicorn's own lines, in the same format
    assert token not in log.read_text()


def test__console_lines__are_for_people(tmp_path: Path, sqlite_url: str) -> None:
    log = tmp_path / "server.log"
    with live_server(sqlite_url, SECRET, log, {"TOCSIN_LOG_FORMAT": "console"}) as server:
        assert httpx.get(f"{server.url}/ready", headers={"X-Request-ID": "console-1"}, timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while "request_id=console-1" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    text = log.read_text()
    (line,) = [line for line in text.splitlines() if "request_id=console-1" in line]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[info\s*\] request\s", line), line
    for field in ("operation_id=getReady", "method=GET", "path=/ready", "status=200", "duration_ms="):
        assert field in line, line
    assert "\x1b[" not in text  # no colour codes when stderr is not a terminal
    assert not any(line.startswith("{") for line in text.splitlines())


BAD = {
    "TOCSIN_LOG_FORMAT": ("xml", "use console or json"),
    "TOCSIN_LOG_LEVEL": ("LOUD", "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
}
COMMANDS = {
    "api-server": lambda: ["api-server", "--port", str(free_port())],
    "api-server --workers 2": lambda: ["api-server", "--port", str(free_port()), "--workers", "2"],
    "standalone": lambda: ["standalone", "--host", "127.0.0.1", "--port", str(free_port())],
    "triggerer": lambda: ["triggerer", "--api-url", "http://127.0.0.1:9", "--token", "t"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("variable", BAD)
def test__a_bad_log_setting__is_one_line_and_exit_2(tmp_path: Path, command: str, variable: str) -> None:
    value, advice = BAD[variable]
    env = {**os.environ, "TOCSIN_JWT_SECRET": SECRET, variable: value}
    env["TOCSIN_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    result = subprocess.run(
        [*TOCSIN, *COMMANDS[command]()], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    (line,) = result.stderr.strip().splitlines()
    name = command.split(maxsplit=1)[0]
    assert line.startswith(f"tocsin {name}: configuration error: {variable}={value!r}"), line
    assert advice in line, line
    assert not (tmp_path / "t.db").exists()  # refused before anything was done
