"""Traces across real processes: ``tocsin api-server`` and ``tocsin triggerer`` with ``TOCSIN_OTEL`` on and the
SDK's console exporter chosen by the standard ``OTEL_TRACES_EXPORTER``; the spans are read back from each
process's standard output. And the two ways turning it on can go wrong: the extra missing, an exporter that
is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tocsin_server.web.tokens import TokenAuthority

from harness.databases import sqlite_database
from harness.live_server import free_port, wait_until_healthy
from tests.conftest import SECRET
from tests.triggerer.e2e_support import FAST, REPO, Tasks, in_seconds, poll

pytestmark = pytest.mark.slow

CONSOLE = {"TOCSIN_OTEL": "true", "OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}


def _spans(path: Path) -> list[dict[str, Any]]:
    """Every span the console exporter wrote to ``path`` (one JSON object after another)."""
    text, decoder, spans, at = path.read_text(errors="replace"), json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        span, at = decoder.raw_decode(text, at)
        spans.append(span)
    return spans


def _named(spans: list[dict[str, Any]], name: str, kind: str) -> list[dict[str, Any]]:
    return [span for span in spans if span["name"] == name and span["kind"] == f"SpanKind.{kind}"]


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A ``tocsin`` command with its standard output (the spans) in ``out``, apart from its log lines."""
    with out.open("wb") as stdout, out.with_suffix(".log").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tocsin_cli", *command], env=env, cwd=REPO, stdout=stdout, stderr=stderr
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test__the_event_calls_server_span__is_the_child_of_the_triggerers_span(
    tmp_path: Path, authority: TokenAuthority
) -> None:
    # SQLite only: what the database adds (statement spans under the request's) is tested on both in-process
    with sqlite_database(tmp_path) as database_url:
        _fire_event_resume(database_url, tmp_path, authority)


def _fire_event_resume(database_url: str, tmp_path: Path, authority: TokenAuthority) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = {
        **os.environ,
        **FAST,
        **CONSOLE,
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_JWT_SECRET": SECRET,
        "OTEL_SERVICE_NAME": "tocsin-api",
    }
    triggerer_env = {
        **os.environ,
        **CONSOLE,
        "TOCSIN_TOKEN": authority.issue("e2e", ["triggerer"], 3600),
        "OTEL_SERVICE_NAME": "tocsin-triggerer",
    }
    server_out, triggerer_out = tmp_path / "server.out", tmp_path / "triggerer.out"
    api_server = ["api-server", "--host", "127.0.0.1", "--port", str(port)]
    with _process(api_server, server_env, server_out) as server:
        wait_until_healthy(url, server, server_out.with_suffix(".log"))
        tasks = Tasks(url, authority.issue("e2e-admin", ["admin", "worker"], 3600))
        try:
            ti_id = tasks.defer("tocsin_client.triggers.DateTimeTrigger", {"moment": in_seconds(0.5)})
            with _process(["triggerer", "--api-url", url], triggerer_env, triggerer_out):
                tasks.wait_state(ti_id, "scheduled")
                served = poll(
                    lambda: _named(_spans(server_out), "submitTriggerEvents", "SERVER"), 15, "the event's server span"
                )
                called = poll(
                    lambda: _named(_spans(triggerer_out), "submitTriggerEvents", "CLIENT"), 15, "the event's call"
                )
        finally:
            tasks.client.close()
    [served_span], [call] = served, called
    [fire] = [span for span in _spans(triggerer_out) if span["context"]["span_id"] == call["parent_id"]]
    assert fire["name"] == "trigger fire"
    assert served_span["parent_id"] == call["context"]["span_id"]
    assert served_span["context"]["trace_id"] == call["context"]["trace_id"] == fire["context"]["trace_id"]
    assert served_span["resource"]["attributes"]["service.name"] == "tocsin-api"
    assert call["resource"]["attributes"]["service.name"] == "tocsin-triggerer"
    statements = [span for span in _spans(server_out) if span["parent_id"] == served_span["context"]["span_id"]]
    assert any(span["kind"] == "SpanKind.CLIENT" and span["name"].startswith("UPDATE") for span in statements)


@pytest.fixture
def without_otel(tmp_path: Path) -> str:
    """A PYTHONPATH whose ``opentelemetry`` package is empty: as if the extra were not installed."""
    shadow = tmp_path / "shadow" / "opentelemetry"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    return os.pathsep.join([str(shadow.parent), str(REPO)])


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tocsin_cli", *command],
        env={**os.environ, "TOCSIN_TOKEN": "t", "TOCSIN_JWT_SECRET": SECRET, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [["api-server"], ["triggerer", "--api-url", "http://127.0.0.1:9"]])
def test__on_without_the_extra__one_line_naming_it_and_exit_2(
    command: list[str], without_otel: str, tmp_path: Path
) -> None:
    with sqlite_database(tmp_path) as url:  # the server checks its database first
        done = _run(command, TOCSIN_OTEL="true", PYTHONPATH=without_otel, TOCSIN_DATABASE_URL=url)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "pip install 'tocsin[otel]'" in done.stderr


def test__an_exporter_that_is_not_installed__one_line_and_exit_2() -> None:
    done = _run(["triggerer", "--api-url", "http://127.0.0.1:9"], TOCSIN_OTEL="true", OTEL_TRACES_EXPORTER="nosuch")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "OTEL_TRACES_EXPORTER='nosuch'" in done.stderr
