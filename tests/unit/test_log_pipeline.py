"""The log pipeline in one process: redaction of credential fields and credential-shaped text, standard-library
records and structlog lines in one format, captured warnings, bound fields. (Real processes: tests/integration/
test_logs.py and tests/triggerer/test_e2e_log_redaction.py.)"""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from tocsin_wire.logs import REDACTED, LogSettings, bind_process, configure_logging, load_log_settings, redact
from tocsin_wire.settings import SettingsError

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.fixture
def lines() -> Iterator[Any]:
    """Configure the pipeline in JSON onto a buffer; restore logging and structlog afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    # An earlier test that configured logging leaves logging's saved showwarning set (pytest then restores its own
    # showwarning around each test), and captureWarnings(True) would do nothing: start from a clean capture.
    logging.captureWarnings(False)
    configure_logging(LogSettings(format="json"), stream=buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.handlers[:], level = saved
    root.setLevel(level)
    logging.captureWarnings(False)
    bind_process(job_id=None)
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"refused {JWT} at once", "refused [redacted] at once"),
        ("Authorization: Bearer abc.def-123 sent", "Authorization: Bearer [redacted] sent"),
        (
            "cannot reach postgresql+asyncpg://etl:pa55@db:5432/x",
            "cannot reach postgresql+asyncpg://[redacted]@db:5432/x",
        ),
        ("no credential at all: user@example.org", "no credential at all: user@example.org"),
    ],
)
def test__credential_shaped_text__is_redacted(text: str, kept: str) -> None:
    assert redact(None, "info", {"event": text})["event"] == kept


def test__credential_fields__are_redacted_whatever_their_value() -> None:
    fields = {"event": "e", "token": "x", "Authorization": "y", "db_password": 3, "trigger_kwargs": {"a": 1}}
    done = redact(None, "info", dict(fields))
    assert done == {
        "event": "e",
        **dict.fromkeys(["token", "Authorization", "db_password", "trigger_kwargs"], REDACTED),
    }


def test__stdlib_and_structlog_lines__share_one_format(lines: Any) -> None:
    bind_process(job_id=7)
    logging.getLogger("some.library").warning("careful: %s", "this", extra={"trigger_id": 3})
    structlog.get_logger().info("native", logger="tocsin.test", token=JWT)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    library, native, warned = lines()
    assert library == {
        "timestamp": library["timestamp"],
        "level": "warning",
        "logger": "some.library",
        "event": "careful: this",
        "job_id": 7,
        "trigger_id": 3,
    }
    assert native["logger"] == "tocsin.test" and native["token"] == REDACTED and native["job_id"] == 7
    assert warned["logger"] == "py.warnings" and "DeprecationWarning: old API" in warned["event"]
    assert all(line["timestamp"].endswith("Z") for line in (library, native, warned))


def test__an_exception__is_one_line_with_its_traceback(lines: Any) -> None:
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        logging.getLogger("tocsin.test").exception("it failed")
    (line,) = lines()
    assert line["event"] == "it failed"
    assert line["exception"].startswith("Traceback (most recent call last)")
    assert JWT not in line["exception"] and "ValueError: bad token [redacted]" in line["exception"]


@pytest.mark.parametrize(("variable", "value"), [("TOCSIN_LOG_FORMAT", "xml"), ("TOCSIN_LOG_LEVEL", "LOUD")])
def test__a_bad_value__names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable}='{value}'"):
        load_log_settings({variable: value})


def test__the_default_format__follows_the_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert LogSettings().resolved_format(Terminal()) == "console"
    assert LogSettings().resolved_format(io.StringIO()) == "json"
    assert LogSettings(format="json").resolved_format(Terminal()) == "json"
    assert load_log_settings({"TOCSIN_LOG_FORMAT": " Console ", "TOCSIN_LOG_LEVEL": "debug"}) == LogSettings(
        format="console", level="DEBUG"
    )


def test__the_default_stream_is_stderr_as_it_is_at_each_write() -> None:
    """A swapped ``sys.stderr`` gets the lines, and the one it replaced may be closed since: a closed stream a
    logger cached must never turn a log line (the request line) into an error."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, sys.stderr
    first, second = io.StringIO(), io.StringIO()
    try:
        sys.stderr = first
        configure_logging(LogSettings(format="json"))
        logger = structlog.get_logger("tocsin.test")
        logger.info("one")  # the logger is cached now (cache_logger_on_first_use)
        sys.stderr = second
        first.close()
        logger.info("two")
        logging.getLogger("tocsin.test.stdlib").warning("three")
        events = [json.loads(line)["event"] for line in second.getvalue().splitlines()]
        assert events == ["two", "three"]
    finally:
        sys.stderr = saved[2]
        root.handlers[:], level = saved[0], saved[1]
        root.setLevel(level)
        logging.captureWarnings(False)
        structlog.reset_defaults()
