"""The runner's ``Sink``: collects what triggers report and sends it as one ``Report`` frame per loop turn."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from tocsin_client.triggerer._frames import EventOut, FailureOut, LogLine, Report, encode
from tocsin_client.triggerer._host import CURRENT_TRIGGER

__all__ = ["Reporter", "TriggerLogHandler"]

MAX_PENDING_LOGS: Final = 5_000
MAX_MESSAGE: Final = 8_000  # one huge line must not become one huge frame


class Reporter:
    """Batches reports: everything reported during one loop iteration leaves in one frame right after it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._report = Report(events=[], failures=[], finished=[], logs=[])
        self._scheduled = False
        self._logs_dropped = 0

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
                message = f"{message}\n{self.formatter.formatException(record.exc_info) if self.formatter else ''}"
            self._reporter.log(
                LogLine(
                    current.trigger_id,
                    current.task_instance_id,
                    current.try_number,
                    record.created,
                    record.levelname,
                    record.name,
                    message[:MAX_MESSAGE],
                )
            )
        except RuntimeError:  # logged from a thread without a running loop: stays in the local log only
            pass
        except Exception:  # noqa: BLE001 - logging must never break the trigger that logs
            self.handleError(record)
