"""One log pipeline for every tocsin process: the API server (and each of its workers), the triggerer and its
runners, the standalone.

structlog renders every line. Records of the standard library's ``logging`` (uvicorn, SQLAlchemy, httpx, Python
warnings, the project's own ``logging.getLogger`` loggers) reach the same processors through one root handler
with structlog's ``ProcessorFormatter``; structlog's own lines (the request line) skip that handler and go to the
same stream through the same processors. So a process writes one format whoever logged. Every line has
``timestamp`` (UTC, ISO 8601), ``level``, ``logger`` and ``event``, the fields bound to the process
(``bind_process``: the triggerer's ``job_id``, a runner's index) and to the current task (structlog's
contextvars: a request's id, a trigger's id), and passes ``redact`` last, so that tokens and passwords never
leave the process.

It lives in the shared leaf because both sides run it, and neither may import the other (docs/architecture.md).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, TextIO, cast

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tocsin_wire.settings import Env, load

__all__ = [
    "FORMATS",
    "LEVELS",
    "REDACTED",
    "LogSettings",
    "bind_process",
    "configure_logging",
    "load_log_settings",
    "redact",
]

FORMATS: Final = ("console", "json")
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDACTED: Final = "[redacted]"
QUIET: Final = {
    "httpx": logging.WARNING,  # a line per call would drown what matters
    "httpcore": logging.WARNING,
    "alembic": logging.WARNING,  # a line per migration step at every start
    "aiosqlite": logging.INFO,  # at DEBUG it logs every statement with its parameters: stored secrets in clear
}
"""Libraries held above the configured level, whatever it is."""


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in FORMATS:
        msg = f"use {' or '.join(FORMATS)}"
        raise ValueError(msg)
    return value


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in LEVELS:
        msg = f"use one of {', '.join(LEVELS)}"
        raise ValueError(msg)
    return value


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How a process logs; each field names its variable (read by ``tocsin_wire.settings``)."""

    format: Annotated[str, Env("TOCSIN_LOG_FORMAT", parse=_log_format)] = ""
    """``console`` or ``json``; unset: ``console`` when stderr is a terminal, ``json`` otherwise."""
    level: Annotated[str, Env("TOCSIN_LOG_LEVEL", parse=_log_level)] = "INFO"
    """The least severe level written."""

    def resolved_format(self, stream: TextIO) -> str:
        """The format: the one asked for, else console for a person at a terminal and JSON for a collector."""
        if self.format:
            return self.format
        isatty = getattr(stream, "isatty", None)
        return "console" if isatty is not None and isatty() else "json"


def load_log_settings(env: Mapping[str, str]) -> LogSettings:
    """The log settings from ``env``; a bad value is a ``SettingsError`` naming its variable."""
    return load(LogSettings, env)


# -- redaction -------------------------------------------------------------------------------------------------------

_SECRET_KEY: Final = re.compile(r"authorization|token|password|passwd|secret|cookie|kwargs|api[_-]?key", re.IGNORECASE)
"""A field whose name says it holds a credential (or trigger kwargs, which may) is never written."""
_SECRET_TEXT: Final = re.compile(
    r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"  # a JWT (its header always starts {" -> eyJ)
    r"|(?<=[Bb]earer )\S+"  # the credential of an Authorization header
    r"|(?<=://)[^/\s:@]*:[^/\s@]+(?=@)"  # user:password in a URL
)
_SECRET_KEYS: Final[dict[str, bool]] = {}
"""``_SECRET_KEY``'s verdict per field name: a process logs few distinct names, each judged once."""


def _scrub(text: str) -> str:
    # Text without any of these marks cannot match: most values skip the regular expression.
    if "eyJ" in text or "earer " in text or "@" in text:
        return _SECRET_TEXT.sub(REDACTED, text)
    return text


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace credential fields and credential-shaped text (tokens, ``user:password@`` in URLs) by ``[redacted]``."""
    for key, value in event_dict.items():
        secret = _SECRET_KEYS.get(key)
        if secret is None:
            secret = _SECRET_KEYS[key] = not key.startswith("_") and _SECRET_KEY.search(key) is not None
        if secret:
            if value is not None:
                event_dict[key] = REDACTED
        elif value.__class__ is str:
            event_dict[key] = _scrub(value)
    return event_dict


# -- fields bound to the whole process ---------------------------------------------------------------------------------

_PROCESS_FIELDS: Final[dict[str, Any]] = {}


def bind_process(**fields: Any) -> None:
    """Fields every later line of this process carries (a None value unbinds): the triggerer's job id changes when
    it registers a new job, and every task, old or new, must log the current one, which a contextvar would not do."""
    for key, value in fields.items():
        if value is None:
            _PROCESS_FIELDS.pop(key, None)
        else:
            _PROCESS_FIELDS[key] = value


def _tidy_foreign(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's extra: the event again, with terminal colour codes
    event = event_dict.get("event")
    if isinstance(event, str) and event.endswith("\n"):  # a captured warning ends with its own newline
        event_dict["event"] = event.rstrip()
    return event_dict


def _add_process_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in _PROCESS_FIELDS.items():
        event_dict.setdefault(key, value)
    return event_dict


# -- rendering -------------------------------------------------------------------------------------------------------

_JSON: Final = msgspec.json.Encoder(enc_hook=str)
"""Values JSON has no form for (a UUID, a path, an exception) are written as their ``str``."""


_FIRST: Final = ("timestamp", "level", "logger", "event")


def _render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    first = {key: event_dict.pop(key) for key in _FIRST if key in event_dict}  # a person reads these first
    return _JSON.encode({**first, **event_dict}).decode()


def _renderer(log_format: str, stream: TextIO) -> Processor:
    if log_format == "json":
        return _render_json
    isatty = getattr(stream, "isatty", None)
    return structlog.dev.ConsoleRenderer(
        colors=isatty is not None and isatty(),
        exception_formatter=structlog.dev.plain_traceback,  # the traceback is already text (and redacted)
    )


class _CurrentStderr:
    """``sys.stderr`` as it is at each write, not as it was when logging was configured: a program that swaps
    ``sys.stderr`` later (a test harness capturing each test's output does) gets the lines where it now points,
    and the stream it replaced, maybe closed since, never turns a log line into an error."""

    def write(self, text: str) -> int:
        stream = sys.stderr
        return 0 if stream is None else stream.write(text)  # None: a process started without a stderr at all

    def flush(self) -> None:
        if (stream := sys.stderr) is not None:
            stream.flush()

    def isatty(self) -> bool:
        stream = sys.stderr
        return stream is not None and stream.isatty()


def configure_logging(
    settings: LogSettings,
    *,
    stream: TextIO | None = None,
    floor: str | None = None,
    quiet: Mapping[str, int] = QUIET,
) -> None:
    """Route every log line of this process through the pipeline above, written to ``stream`` (stderr).

    ``floor``: a less severe level the loggers still let through to other handlers than the one writing here (a
    runner ships its triggers' INFO lines to the server whatever level this process writes).
    """
    # A cast: it has what the handler, the renderer and structlog's writer call (write, flush, isatty).
    stream = stream if stream is not None else cast("TextIO", _CurrentStderr())
    context: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_process_fields,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[Processor] = [
        structlog.processors.format_exc_info,
        redact,
        _renderer(settings.resolved_format(stream), stream),
    ]
    handler = logging.StreamHandler(stream)
    handler.setLevel(settings.level)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *context,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),  # logger.info(..., extra={fields}): the fields become the line's
                _tidy_foreign,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    levels = logging.getLevelNamesMapping()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(min(levels[settings.level], levels[floor or settings.level]))
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(True)  # a library's warnings.warn becomes a line of the pipeline, with its timestamp
    # structlog's own loggers (``structlog.get_logger().info(event, logger=NAME, ...)``: the request line, where the cost of a line
    # counts) skip the standard library's record, handler and formatter: the same processors, written straight to
    # the same stream.
    structlog.configure(
        processors=[*context, *tail],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        wrapper_class=structlog.make_filtering_bound_logger(levels[settings.level]),
        cache_logger_on_first_use=True,
    )
