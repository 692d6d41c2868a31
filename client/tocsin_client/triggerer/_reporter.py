"""The runner's ``Sink``: collects what triggers report and sends it as one ``Report`` frame per loop turn."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import msgspec

from tocsin_client.triggerer._frames import EventOut, FailureOut, LogLine, Report, encode
from tocsin_client.triggerer._host import CURRENT_TRIGGER

__all__ = ["Reporter", "TriggerLogHandler"]

MAX_PENDING_LOGS: Final = 5_000
MAX_PENDING_CHARS: Final = 8_000_000  # past this much text the pending lines leave at once, in their own frame
# The triggerer sends lines whole: the API server is the one place that applies the line limit
# (TOCSIN_MAX_LOG_LINE_BYTES). It cuts only what no request could carry: past the contract's maxLength
# (1,000,000 characters), or past MAX_LINE_JSON_BYTES once JSON-encoded, so that one line always fits the
# server's default 1 MiB body limit (``_logship`` sizes the batches).
MAX_LINE_CHARS: Final = 1_000_000
MAX_LINE_JSON_BYTES: Final = 900_000
_FORMATTER: Final = logging.Formatter()
_json: Final = msgspec.json.Encoder()


def fit_line(message: str) -> str:
    """``message`` as it can travel: whole, unless even one request could not carry it (then cut, marked)."""
    if len(message) <= MAX_LINE_JSON_BYTES // 6:  # no JSON escape takes more than 6 bytes a character
        return message
    size = len(_json.encode(message))
    if len(message) <= MAX_LINE_CHARS and size <= MAX_LINE_JSON_BYTES:
        return message
    total = len(message.encode(errors="replace"))
    marker = f" ...[cut by the triggerer: the line had {total} bytes, more than one request carries]"
    room = MAX_LINE_JSON_BYTES - 2 * len(marker)
    kept = message[: min(len(message), MAX_LINE_CHARS - len(marker))]
    while (size := len(_json.encode(kept))) > room:
        kept = kept[: int(len(kept) * room / size * 0.98)]
    return kept + marker


class Reporter:
    """Batches reports: everything reported during one loop iteration leaves in one frame right after it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._report = Report(events=[], failures=[], finished=[], logs=[])
        self._scheduled = False
        self._logs_dropped = 0
        self._pending_chars = 0

    def event(self, event: EventOut) -> None:
        """A trigger fired."""
        self._report.events.append(event)
        self._schedule()

    def failure(self, failure: FailureOut) -> None:
        """A trigger failed."""
        self._report.failures.append(failure)
        self._schedule()

    def finished(self, trigger_id: int) -> None:
        """A trigger's coroutine ended."""
        self._report.finished.append(trigger_id)
        self._schedule()

    def log(self, line: LogLine) -> None:
        """A trigger logged; past ``MAX_PENDING_LOGS`` per frame the oldest pending lines are dropped."""
        logs = self._report.logs
        if len(logs) >= MAX_PENDING_LOGS:
            del logs[0]
            self._logs_dropped += 1
        logs.append(line)
        self._pending_chars += len(line.message)
        if self._pending_chars > MAX_PENDING_CHARS:  # one loop turn of huge lines must not become one huge frame
            self.flush()
        else:
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Send what is pending now."""
        self._scheduled = False
        report = self._report
        if not (report.events or report.failures or report.finished or report.logs or self._logs_dropped):
            return
        report.logs_dropped, self._logs_dropped = self._logs_dropped, 0
        self._pending_chars = 0
        self._report = Report(events=[], failures=[], finished=[], logs=[])
        if not self._writer.is_closing():
            self._writer.write(encode(report))


class TriggerLogHandler(logging.Handler):
    """One handler for the whole runner: records logged inside a trigger's task become its log lines."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.INFO)
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        current = CURRENT_TRIGGER.get()
        if current is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                # The exception and its traceback belong to the trigger's log as much as the message does.
                message = f"{message}\n{(self.formatter or _FORMATTER).formatException(record.exc_info)}"
            self._reporter.log(
                LogLine(
                    current.trigger_id,
                    current.task_instance_id,
                    current.try_number,
                    record.created,
                    record.levelname,
                    record.name,
                    fit_line(message),
                )
            )
        except RuntimeError:  # logged from a thread without a running loop: stays in the local log only
            pass
        except Exception:  # noqa: BLE001 - logging must never break the trigger that logs
            self.handleError(record)
