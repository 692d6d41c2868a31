"""The builtin triggers. Import-light on purpose: a triggerer imports this module for every workload it starts."""

from __future__ import annotations

import asyncio
import glob
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tocsin_client.errors import NotFoundError, TocsinError
from tocsin_client.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DagRunStateTrigger",
    "DateTimeTrigger",
    "FileTrigger",
    "HttpPollTrigger",
    "TaskStateTrigger",
    "TimeDeltaTrigger",
]

_PACKAGE = "tocsin_client.triggers"
_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class DateTimeTrigger(BaseTrigger):
    """Fires once at ``moment`` (timezone-aware); the event payload is the moment."""

    def __init__(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            msg = "moment must be timezone-aware"
            raise ValueError(msg)
        self.moment = moment

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs."""
        return f"{_PACKAGE}.DateTimeTrigger", {"moment": self.moment}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep until the moment in one sleep, not a poll."""
        remaining = (self.moment - datetime.now(UTC)).total_seconds()
        # asyncio.sleep follows the monotonic clock; a wall clock that jumps (NTP, suspend) is caught by looping.
        while remaining > 0:
            await asyncio.sleep(remaining)
            remaining = (self.moment - datetime.now(UTC)).total_seconds()
        yield TriggerEvent(self.moment)


class TimeDeltaTrigger(DateTimeTrigger):
    """Fires once ``delta`` after it was created.

    The moment is fixed at construction and serialized with the delta, so a trigger rebuilt on another
    triggerer fires at the same moment instead of starting the delay again. Stored kwargs that hold only
    ``delta`` (hand-written) or only ``moment`` are accepted too.
    """

    def __init__(self, delta: timedelta | None = None, *, moment: datetime | None = None) -> None:
        if moment is None:
            if delta is None:
                msg = "TimeDeltaTrigger needs a delta (or the moment it was computed as)"
                raise TypeError(msg)
            moment = datetime.now(UTC) + delta
        super().__init__(moment)
        self.delta = delta

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs."""
        return f"{_PACKAGE}.TimeDeltaTrigger", {"delta": self.delta, "moment": self.moment}


class FileTrigger(BaseTrigger):
    """Fires when at least one file matches ``path_glob``; the payload is the sorted list of matches."""

    def __init__(self, path_glob: str, poll_interval: float = 5.0, *, recursive: bool = False) -> None:
        self.path_glob = path_glob
        self.poll_interval = poll_interval
        self.recursive = recursive

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs."""
        kwargs = {"path_glob": self.path_glob, "poll_interval": self.poll_interval, "recursive": self.recursive}
        return f"{_PACKAGE}.FileTrigger", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the file system every ``poll_interval`` seconds."""
        while True:
            # A glob over a large or network directory blocks; keep it off the runner loop.
            if matches := await asyncio.to_thread(self._matches):
                yield TriggerEvent(matches)
                return
            await asyncio.sleep(self.poll_interval)

    def _matches(self) -> list[str]:
        # Path.glob needs a base directory; path_glob is a whole (usually absolute) pattern.
        paths = glob.glob(self.path_glob, recursive=self.recursive)  # noqa: PTH207
        return sorted(path for path in paths if Path(path).is_file())


class HttpPollTrigger(BaseTrigger):
    """Fires when ``url`` answers ``expected_status`` (and, with ``json_path``, the JSON value there matches).

    ``json_path`` is a dotted path into the JSON body (``"$.data.items.0.state"`` or ``"data.items.0.state"``;
    numbers index lists). Without ``expected_value`` any value present at the path fires. The payload is
    ``{"status_code": ..., "value": ...}``. Connection errors and timeouts are logged and polled through.
    """

    def __init__(
        self,
        url: str,
        method: str = "GET",
        expected_status: int = 200,
        json_path: str | None = None,
        expected_value: Any = None,
        poll_interval: float = 5.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.method = method
        self.expected_status = expected_status
        self.json_path = json_path
        self.expected_value = expected_value
        self.poll_interval = poll_interval
        self._transport = transport  # for tests; not serialized

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs."""
        return f"{_PACKAGE}.HttpPollTrigger", {
            "url": self.url,
            "method": self.method,
            "expected_status": self.expected_status,
            "json_path": self.json_path,
            "expected_value": self.expected_value,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the URL every ``poll_interval`` seconds."""
        from tocsin_client._http import httpx  # noqa: PLC0415  # only triggers that poll HTTP pay for it

        async with httpx.AsyncClient(transport=self._transport) as http:
            while True:
                try:
                    response = await http.request(self.method, self.url)
                except httpx.TransportError as exc:
                    _log.warning("http poll failed", extra={"url": self.url, "error": repr(exc)})
                else:
                    found, value = self._check(response)
                    if found:
                        yield TriggerEvent({"status_code": response.status_code, "value": value})
                        return
                await asyncio.sleep(self.poll_interval)

    def _check(self, response: httpx.Response) -> tuple[bool, Any]:
        if response.status_code != self.expected_status:
            return False, None
        if self.json_path is None:
            return True, None
        try:
            found, value = _lookup(response.json(), self.json_path)
        except ValueError:  # not JSON (yet): keep polling
            return False, None
        if not found or (self.expected_value is not None and value != self.expected_value):
            return False, None
        return True, value


def _lookup(document: Any, json_path: str) -> tuple[bool, Any]:
    """Follow a dotted path; ``(False, None)`` when any step is missing."""
    path = json_path.removeprefix("$").removeprefix(".")
    value = document
    for step in path.split(".") if path else []:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        else:
            return False, None
    return True, value


class TaskStateTrigger(BaseTrigger):
    """Fires when every task instance of ``task_ids`` in a dag run is in one of ``target_states``.

    A task id with no task instance yet, or a dag run that does not exist yet, keeps the trigger waiting.
    The payload is ``{"dag_id", "run_id", "states": {task_id: [state per map index]}}``.
    """

    def __init__(
        self,
        dag_id: str,
        run_id: str,
        task_ids: Iterable[str],
        target_states: Iterable[str] = ("success",),
        poll_interval: float = 5.0,
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_ids = list(task_ids)
        if not self.task_ids:
            msg = "name at least one task id to wait for"
            raise ValueError(msg)
        self.target_states = list(target_states)
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs."""
        return f"{_PACKAGE}.TaskStateTrigger", {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_ids": self.task_ids,
            "target_states": self.target_states,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the task-instance states through the API."""
        while True:
            if (states := await self._states()) is not None:
                yield TriggerEvent({"dag_id": self.dag_id, "run_id": self.run_id, "states": states})
                return
            await asyncio.sleep(self.poll_interval)

    async def _states(self) -> dict[str, list[str]] | None:
        """The states by task id once all are in a target state, else None."""
        items = await _poll(self.context.get_task_states(self.task_ids, dag_id=self.dag_id, run_id=self.run_id))
        states: dict[str, list[str]] = {task_id: [] for task_id in self.task_ids}
        for item in items or []:
            if item.task_id in states:
                states[item.task_id].append(item.state.value)
        done = all(found and all(state in self.target_states for state in found) for found in states.values())
        return states if done else None


class DagRunStateTrigger(BaseTrigger):
    """Fires when a dag run is in one of ``target_states``; the payload is ``{"dag_id", "run_id", "state"}``."""

    def __init__(
        self,
        dag_id: str,
        run_id: str,
        target_states: Iterable[str] = ("success", "failed"),
        poll_interval: float = 5.0,
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.target_states = list(target_states)
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs."""
        return f"{_PACKAGE}.DagRunStateTrigger", {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "target_states": self.target_states,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the dag-run state through the API."""
        while True:
            state = await _poll(self.context.get_dag_run_state(dag_id=self.dag_id, run_id=self.run_id))
            if state in self.target_states:
                yield TriggerEvent({"dag_id": self.dag_id, "run_id": self.run_id, "state": state})
                return
            await asyncio.sleep(self.poll_interval)


async def _poll(call: Awaitable[_T]) -> _T | None:
    """The answer of one poll, or None when it is worth asking again (not there yet, or a transient failure)."""
    try:
        return await call
    except NotFoundError:
        return None
    except TocsinError as exc:
        if not exc.transient:
            raise
        _log.warning("poll failed, retrying", extra={"error": str(exc)})
        return None
