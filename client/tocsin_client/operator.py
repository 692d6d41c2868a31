"""The operator commands over the admin API: ``tocsin triggers list``, ``tocsin jobs list``, ``tocsin logs``.

They are API clients like any other: the typed SDK, a token with the ``admin`` scope, nothing read from a
database. Each prints a table by default or the API's own JSON with ``--output json`` (``logs`` prints JSON
Lines, one object per log line, so that ``--follow`` can stream it). The token is only ever judged by the
server: a missing or insufficient one is the server's 401 or 403, reported in one line naming the scope.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TextIO

import msgspec

from tocsin_client._client import Client
from tocsin_client.errors import APIError, ForbiddenError, TocsinError, TransportError, UnauthorizedError
from tocsin_client.generated.models import JobStateName, StoredTriggerLogLine, TriggerState

if TYPE_CHECKING:
    from uuid import UUID

    from tocsin_client.generated.models import Job, Trigger

__all__ = ["Connection", "Failure", "follow_logs", "jobs_list", "logs", "triggers_list"]

SCOPE: Final = "admin"
"""What every admin operation needs (the contract says so of each); named when the server refuses a token."""
PAGE: Final = 1000
"""The largest page the API serves."""
_LAST_ERROR_WIDTH: Final = 60


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the commands send their requests, and what to say when the server refuses the token."""

    api_url: str
    token: str | None
    token_hint: str
    """How to pass a token, for the one line a 401 or 403 prints."""

    def client(self) -> Client:
        return Client(self.api_url, token=self.token)


@dataclass(frozen=True, slots=True)
class Failure:
    """How a command ends when a call failed: its one line and its exit code."""

    message: str
    code: int

    def __str__(self) -> str:
        return self.message


def explain(exc: TocsinError, connection: Connection) -> Failure:
    """One line for a failed call: a refused token names the scope; bad input is the operator's (exit 2)."""
    if isinstance(exc, UnauthorizedError | ForbiddenError):
        detail = exc.problem.detail if isinstance(exc.problem.detail, str) else exc.problem.title
        return Failure(
            f"the server refused the token ({exc.status}: {detail}): this command needs a token with the "
            f"{SCOPE!r} scope; {connection.token_hint}",
            2,
        )
    if isinstance(exc, TransportError):
        return Failure(
            f"cannot reach the API server at {connection.api_url} ({exc}); is it running? "
            "(set --api-url or TOCSIN_API_URL)",
            1,
        )
    if isinstance(exc, APIError) and 400 <= exc.status < 500:
        return Failure(str(exc), 2)
    return Failure(str(exc), 1)


# -- rendering -------------------------------------------------------------------------------------------------


def age(seconds: float) -> str:
    """A duration the way ``kubectl get`` shows one: 42s, 5m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as wide as their widest cell, two spaces apart; the last column is not padded."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    return "\n".join(lines) + "\n"


def _trigger_row(trigger: Trigger) -> list[str]:
    tis = trigger.task_instance_ids
    served = str(tis[0]) + (f" (+{len(tis) - 1})" if len(tis) > 1 else "") if tis else "-"
    if not tis and trigger.asset_watcher_count:
        served = f"{trigger.asset_watcher_count} asset watcher(s)"
    error = trigger.last_error
    return [
        str(trigger.id),
        trigger.state.value,
        "-" if trigger.triggerer_id is None else str(trigger.triggerer_id),
        age(trigger.age_s),
        served,
        trigger.classpath,
        "-" if error is None else _one_line(f"{error.level}: {error.event}", _LAST_ERROR_WIDTH),
    ]


def _job_row(job: Job) -> list[str]:
    return [
        str(job.id),
        job.state.value,
        "yes" if job.alive else "no",
        job.hostname,
        str(job.pid),
        f"{job.trigger_count}/{job.capacity}",
        f"{age(job.heartbeat_age_s)} ago",
        job.start_date.isoformat(timespec="seconds"),
    ]


def _log_text(line: StoredTriggerLogLine) -> str:
    when = line.timestamp.isoformat(timespec="milliseconds")
    try_number = "-" if line.try_number is None else str(line.try_number)
    cut = " [truncated]" if line.truncated else ""
    return f"{when}  {line.level.upper():<8} try {try_number}  trigger {line.trigger_id}  {line.event}{cut}\n"


def _note_more(shown: int, total: int, what: str, err: TextIO) -> None:
    if total > shown:
        err.write(f"showing {shown} of {total} {what}; use --limit and --offset for more\n")


# -- the commands ----------------------------------------------------------------------------------------------


def triggers_list(
    connection: Connection,
    *,
    output: str,
    state: str | None,
    job_id: int | None,
    classpath: str | None,
    limit: int,
    offset: int,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> None:
    with connection.client() as client:
        page = client.list_triggers(
            state=None if state is None else TriggerState(state),
            job_id=job_id,
            classpath=classpath,
            limit=limit,
            offset=offset,
        )
    if output == "json":
        out.write(msgspec.json.encode(page).decode() + "\n")
        return
    headers = ("ID", "STATE", "JOB", "AGE", "TASK INSTANCE", "CLASSPATH", "LAST ERROR")
    out.write(table(headers, [_trigger_row(t) for t in page.triggers]))
    _note_more(len(page.triggers), page.total, "triggers", err)


def jobs_list(
    connection: Connection,
    *,
    output: str,
    state: str | None,
    alive: bool | None,
    limit: int,
    offset: int,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> None:
    with connection.client() as client:
        page = client.list_jobs(
            state=None if state is None else JobStateName(state), alive=alive, limit=limit, offset=offset
        )
    if output == "json":
        out.write(msgspec.json.encode(page).decode() + "\n")
        return
    headers = ("ID", "STATE", "ALIVE", "HOST", "PID", "TRIGGERS", "HEARTBEAT", "STARTED")
    out.write(table(headers, [_job_row(j) for j in page.jobs]))
    _note_more(len(page.jobs), page.total, "jobs", err)


def follow_logs(
    fetch: Callable[[int], Sequence[StoredTriggerLogLine]],
    *,
    follow: bool,
    interval_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[StoredTriggerLogLine]:
    """Every line, in id order, each once: pages are read on from the last id seen (the API's cursor).

    Without ``follow`` it stops at the first page that is not full; with it, it waits ``interval_s`` and asks
    again, forever (the caller stops it). The server orders a task instance's lines by commit, so a line
    stored after the cursor passed its neighbours still has the larger id and is not skipped.
    """
    cursor = 0
    while True:
        page = fetch(cursor)
        yield from page
        if page:
            cursor = page[-1].id
        if len(page) >= PAGE:
            continue  # more are waiting: no pause
        if not follow:
            return
        sleep(interval_s)


def logs(
    connection: Connection,
    task_instance_id: UUID,
    *,
    output: str,
    try_number: int | None,
    follow: bool,
    interval_s: float,
    out: TextIO = sys.stdout,
) -> None:
    with connection.client() as client:

        def fetch(after: int) -> Sequence[StoredTriggerLogLine]:
            return client.get_task_instance_logs(task_instance_id, try_number=try_number, after=after, limit=PAGE).lines

        for line in follow_logs(fetch, follow=follow, interval_s=interval_s):
            out.write(msgspec.json.encode(line).decode() + "\n" if output == "json" else _log_text(line))
            out.flush()  # a follower reads each line as it comes, through a pipe too
