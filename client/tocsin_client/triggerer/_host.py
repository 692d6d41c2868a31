"""``TriggerHost``: runs trigger coroutines on one event loop and reports what they do to a ``Sink``.

Each trigger costs one task and its coroutines: no thread, file descriptor or log handler of its own. A trigger
that cannot be imported or built, raises, ends without an event, or yields something that cannot be sent ends as
a reported failure for that trigger alone.

A time trigger (``DateTimeTrigger``'s own ``run()``, no ``cleanup()``) whose moment is more than a second away
costs less: until its moment, one loop timer holds the built trigger and its workload, and only then does its
task start, the same ``run()`` as ever (which sleeps again if the wall clock says it is early). A task, its
three coroutine frames, a future and a context cost about as much again as the trigger's own state, and a
million idle time triggers is the case the triggerer is sized for. Cancelling one cancels its timer: its
``run()`` never began, and it has no cleanup.

When its timer rings and the wall clock says the moment came, such a trigger fires without a task at all:
``DateTimeTrigger.run()`` would only yield ``TriggerEvent(moment)`` and end, so the host emits that event itself.
Profiled with 10,000 triggers due at one instant, the task path made one loop turn of 0.2-0.4 s (10,000 tasks,
each building a context and a client view, driving ``run()``, closing it, cleaning up) before the first event could
leave the runner. Rung timers queue instead, and are fired in slices of about 10 ms (``Slicer``): the first
events reach the supervisor within milliseconds, the rest follow slice by slice while the first are delivered.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import logging
import re
import sys
import time
import traceback
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

import structlog

from tocsin_client import serde
from tocsin_client.triggerer._frames import EventOut, FailureOut
from tocsin_client.triggerer._slices import Slicer
from tocsin_client.triggers.base import BaseTrigger, TaskEndEvent, TriggerEvent
from tocsin_client.triggers.builtins import DateTimeTrigger
from tocsin_client.triggers.runtime import TriggerContext

if TYPE_CHECKING:
    from tocsin_client._client import AsyncClient
    from tocsin_client.generated.models import RunTrigger, WorkloadTaskInstance

__all__ = ["CURRENT_TRIGGER", "RunningTrigger", "Sink", "TriggerHost"]

_log = logging.getLogger("tocsin.triggerer.runner")
_CLASSPATH: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_MAX_ERROR: Final = 10_000
_MAX_TRACEBACK_LINES: Final = 1000
_NO_KWARGS: Final[dict[str, Any]] = {}
_TIMER_AFTER_S: Final = 1.0  # a moment nearer than this is slept on in the trigger's task at once


def _sleeps_only(cls: type[BaseTrigger]) -> bool:
    """Whether the class's triggers do nothing but wait for their ``moment`` until it comes."""
    return issubclass(cls, DateTimeTrigger) and cls.run is DateTimeTrigger.run and cls.cleanup is BaseTrigger.cleanup


def _slim(workload: RunTrigger) -> None:
    """Drop or share what an idle trigger's workload need not hold alone: 1,000,000 idle triggers add up."""
    workload.kwargs = _NO_KWARGS
    workload.classpath = sys.intern(workload.classpath)
    if (ti := workload.task_instance) is not None:
        ti.dag_id, ti.run_id = sys.intern(ti.dag_id), sys.intern(ti.run_id)
        if ti.next_method is not None:
            ti.next_method = sys.intern(ti.next_method)


class RunningTrigger(NamedTuple):
    """Which trigger the current task runs: read by the log handler."""

    trigger_id: int
    task_instance: WorkloadTaskInstance | None

    @property
    def task_instance_id(self) -> str | None:
        """The task instance's id as text."""
        return None if self.task_instance is None else str(self.task_instance.id)

    @property
    def try_number(self) -> int | None:
        """The task instance's try."""
        return None if self.task_instance is None else self.task_instance.try_number


CURRENT_TRIGGER: contextvars.ContextVar[RunningTrigger | None] = contextvars.ContextVar(
    "tocsin_current_trigger", default=None
)


class Sink(Protocol):
    """Where a host reports; the runner forwards to its supervisor."""

    def event(self, event: EventOut) -> None: ...
    def failure(self, failure: FailureOut) -> None: ...
    def finished(self, trigger_id: int) -> None: ...


class TriggerError(Exception):
    """A trigger could not run; the message is what its task instance is told."""


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]


def _traceback_lines(exc: BaseException) -> list[str]:
    lines = "".join(traceback.format_exception(exc)).rstrip("\n").split("\n")
    return lines[-_MAX_TRACEBACK_LINES:]


def _encode_xcoms(classpath: str, event: TaskEndEvent) -> dict[str, Any] | None:
    """A terminal event's XComs, serde-encoded; they go to the server inside the event (one transaction there)."""
    if not event.xcoms:
        return None
    encoded = {}
    for key, value in event.xcoms.items():
        try:
            encoded[key] = serde.serialize(value)
        except serde.SerdeError as exc:
            msg = f"{classpath}: xcom {key!r} cannot be sent: {exc}"
            raise TriggerError(msg) from exc
    return encoded


class TriggerHost:
    """Starts, cancels and watches triggers on the running loop.

    Args:
        sink: Receives events, failures and the ids of triggers whose coroutine ended.
        client_factory: Builds the ``AsyncClient`` a trigger's context uses, from its id and workload token.
        allowed: serde allowlist patterns for trigger kwargs.
        cleanup_timeout_s: How long ``cleanup()`` of one trigger may take.
    """

    def __init__(
        self,
        sink: Sink,
        client_factory: Callable[[int, str | None], AsyncClient],
        *,
        allowed: tuple[str, ...] = ("tocsin_client.*",),
        cleanup_timeout_s: float = 5.0,
    ) -> None:
        self._sink = sink
        self._client_factory = client_factory
        self._allowed = allowed
        self._cleanup_timeout_s = cleanup_timeout_s
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}  # time triggers waiting for their moment, no task yet
        # Time triggers whose timer rang, fired in slices by one task; a deque keeps the order (popping a dict's
        # first key again and again scans the deleted ones), the dict says which are still due (not cancelled).
        self._due: dict[int, tuple[RunTrigger, BaseTrigger]] = {}
        self._due_order: deque[int] = deque()
        self._firing: asyncio.Task[None] | None = None
        self._stopping = False
        self._fire_slicer = Slicer()
        self._classes: dict[str, type[BaseTrigger]] = {}
        self.ended = 0  # triggers whose coroutine ended (fired, failed or cancelled), a running total

    def __len__(self) -> int:
        return len(self._tasks) + len(self._timers) + len(self._due)

    def __contains__(self, trigger_id: object) -> bool:
        return trigger_id in self._tasks or trigger_id in self._timers or trigger_id in self._due

    @property
    def firing(self) -> bool:
        """Rung time triggers are being fired (a burst is under way)."""
        return self._firing is not None

    @property
    def waiting_on_timers(self) -> int:
        """Time triggers held by a timer until their moment (counted in ``len`` too)."""
        return len(self._timers)

    def start(self, workload: RunTrigger) -> None:
        """Run the workload's trigger; a trigger that already runs is left alone."""
        trigger_id = workload.trigger_id
        if trigger_id in self:
            return
        loop = asyncio.get_running_loop()
        trigger = self._time_trigger(workload)
        if trigger is not None:
            delay = (trigger.moment - datetime.now(UTC)).total_seconds()  # type: ignore[attr-defined]
            if delay > _TIMER_AFTER_S:
                _slim(workload)
                self._timers[trigger_id] = loop.call_later(delay, self._wake, workload, trigger)
                return
        # No done callback: a callback costs a closure and a context copy per trigger; _run reports its own end.
        self._tasks[trigger_id] = loop.create_task(self._run(workload, trigger))

    def _time_trigger(self, workload: RunTrigger) -> BaseTrigger | None:
        """The built trigger if it only waits for its moment; None otherwise (its task builds it, or fails)."""
        try:
            if not _sleeps_only(self._import(workload.classpath)):
                return None
            return self._build(workload)
        except TriggerError:
            return None  # the trigger's own task meets the error again and reports it as the trigger's failure

    def _wake(self, workload: RunTrigger, trigger: BaseTrigger) -> None:
        """A time trigger's timer rang: it is due; the firing task fires it in its turn."""
        trigger_id = workload.trigger_id
        if self._timers.pop(trigger_id, None) is None:
            return
        if self._stopping:  # stop() cancels every trigger: one whose timer rang meanwhile ends unfired too
            self.ended += 1
            return
        self._due[trigger_id] = (workload, trigger)
        self._due_order.append(trigger_id)
        if self._firing is None:
            self._firing = asyncio.get_running_loop().create_task(self._fire_due())

    async def _fire_due(self) -> None:
        """Fire the due time triggers, letting the loop turn after each slice (the reporter's frame leaves then)."""
        slicer = self._fire_slicer
        slicer.begin()
        try:
            while self._due_order:
                trigger_id = self._due_order.popleft()
                if (due := self._due.pop(trigger_id, None)) is not None:
                    try:
                        self._fire_time_trigger(*due)
                    except Exception:  # noqa: BLE001 - the sink or a log line failing must not strand the rest
                        _log.exception("trigger %s: firing failed", trigger_id)
                    await slicer.done_one()
        finally:
            self._firing = None  # nothing is due: checked with no await since, so no timer rang unseen

    def _fire_time_trigger(self, workload: RunTrigger, trigger: BaseTrigger) -> None:
        """What ``DateTimeTrigger.run()`` does once its moment came, without a task: one event, then the end."""
        trigger_id = workload.trigger_id
        moment: datetime = trigger.moment  # type: ignore[attr-defined]
        remaining = (moment - datetime.now(UTC)).total_seconds()
        if remaining > 0:  # the loop's clock rang before the wall clock's moment (as run() would, wait the rest)
            self._timers[trigger_id] = asyncio.get_running_loop().call_later(remaining, self._wake, workload, trigger)
            return
        try:
            self._emit(workload, TriggerEvent(moment))
        except Exception as exc:  # noqa: BLE001 - any error of a trigger is its failure alone
            self._failed(trigger_id, exc)
        self.ended += 1
        self._sink.finished(trigger_id)

    def _failed(self, trigger_id: int, exc: Exception) -> None:
        """Report a trigger's error as its failure. Called in the ``except`` block, so the line of an unexpected
        error carries its traceback; a ``TriggerError`` is tocsin's own, said in one line."""
        if isinstance(exc, TriggerError):
            _log.error("trigger %s failed: %s", trigger_id, exc)
            self._sink.failure(FailureOut(trigger_id, str(exc)[:_MAX_ERROR], []))
        else:
            _log.exception("trigger %s raised %s", trigger_id, _error_text(exc))
            self._sink.failure(FailureOut(trigger_id, _error_text(exc), _traceback_lines(exc)))

    def cancel(self, trigger_id: int) -> None:
        """Cancel a trigger (its cleanup still runs); unknown ids are ignored."""
        if (task := self._tasks.pop(trigger_id, None)) is not None:
            task.cancel()
        elif (timer := self._timers.pop(trigger_id, None)) is not None:
            timer.cancel()
            self.ended += 1
        elif self._due.pop(trigger_id, None) is not None:
            self.ended += 1

    async def stop(self, timeout_s: float = 5.0, slicer: Slicer | None = None) -> None:
        """Cancel every trigger and wait for their cleanups, at most ``timeout_s``.

        With a ``slicer`` the cancellations go in slices that let the loop turn (100,000 cancelled at once make
        one loop turn of seconds); those not cancelled by the deadline are left to the process's exit.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        # Only the tasks still cleaning up are kept: a cancelled task holds its CancelledError, its traceback and
        # frames, and 100,000 of them kept to the end fill the collector's oldest generation for nothing.
        cleaning: set[asyncio.Task[None]] = set()
        if slicer is not None:
            slicer.begin()
        self._stopping = True
        if self._firing is not None:
            self._firing.cancel()  # cancelled before its first step, its ``finally`` never runs: cleared here
            self._firing = None
        self.ended += len(self._due)
        self._due.clear()
        self._due_order.clear()
        while self._timers:
            _, timer = self._timers.popitem()
            timer.cancel()
            self.ended += 1
            if slicer is not None:
                await slicer.done_one()
        while self._tasks:
            _, task = self._tasks.popitem()
            task.cancel()
            cleaning.add(task)
            task.add_done_callback(cleaning.discard)
            if slicer is not None:
                await slicer.done_one()
                if loop.time() > deadline:
                    break
        if slicer is not None:
            await slicer.pause()
        if cleaning and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(cleaning), timeout=left)

    async def _run(self, workload: RunTrigger, built: BaseTrigger | None = None) -> None:
        trigger_id = workload.trigger_id
        CURRENT_TRIGGER.set(RunningTrigger(trigger_id, workload.task_instance))
        structlog.contextvars.bind_contextvars(trigger_id=trigger_id)  # this task's context: its lines only
        trigger: BaseTrigger | None = None
        cancelled = False
        try:
            trigger = built if built is not None else self._build(workload)
            trigger.context = TriggerContext(
                client=self._client_factory(trigger_id, workload.token), task_instance=workload.task_instance
            )
            _slim(workload)
            await self._drive(trigger, workload)
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as exc:  # noqa: BLE001 - any error of a trigger is its failure alone
            self._failed(trigger_id, exc)
        finally:
            if trigger is not None:
                await self._cleanup(trigger_id, trigger)
            if self._tasks.get(trigger_id) is asyncio.current_task():
                del self._tasks[trigger_id]
            self.ended += 1
            if not cancelled:
                self._sink.finished(trigger_id)

    def _build(self, workload: RunTrigger) -> BaseTrigger:
        cls = self._import(workload.classpath)
        try:
            kwargs = serde.deserialize(workload.kwargs, self._allowed)
        except serde.SerdeError as exc:
            msg = f"cannot decode the kwargs of {workload.classpath}: {exc}"
            raise TriggerError(msg) from exc
        if not isinstance(kwargs, dict):
            msg = f"the kwargs of {workload.classpath} are not an object"
            raise TriggerError(msg)
        try:
            trigger = cls(**kwargs)
        except Exception as exc:
            msg = f"cannot build {workload.classpath} from its kwargs: {_error_text(exc)}"
            raise TriggerError(msg) from exc
        return trigger

    def _import(self, classpath: str) -> type[BaseTrigger]:
        if (cls := self._classes.get(classpath)) is not None:
            return cls
        if not _CLASSPATH.fullmatch(classpath):
            msg = f"{classpath!r} is not a dotted class path"
            raise TriggerError(msg)
        module_name, _, name = classpath.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), name)
        except Exception as exc:
            msg = f"cannot import trigger class {classpath}: {_error_text(exc)}"
            raise TriggerError(msg) from exc
        if not (isinstance(found, type) and issubclass(found, BaseTrigger)):
            msg = f"{classpath} is not a BaseTrigger subclass"
            raise TriggerError(msg)
        self._classes[classpath] = found
        return found

    async def _drive(self, trigger: BaseTrigger, workload: RunTrigger) -> None:
        """Iterate ``run()``; a trigger serving a task instance stops after its first event."""
        fired = False
        events = trigger.run()
        if not isinstance(events, AsyncGenerator):
            if inspect.iscoroutine(events):
                events.close()
            msg = f"{workload.classpath}.run() must be an async generator, it returned {type(events).__name__}"
            raise TriggerError(msg)
        try:  # contextlib.aclosing would cost an object per trigger
            async for event in events:
                self._emit(workload, event)
                fired = True
                if workload.task_instance is not None:
                    return
        finally:
            await events.aclose()
        if not fired:
            msg = f"{workload.classpath} ended without yielding an event"
            raise TriggerError(msg)

    def _emit(self, workload: RunTrigger, event: Any) -> None:
        if not isinstance(event, TriggerEvent):
            msg = f"{workload.classpath} yielded {type(event).__name__!r}, not a TriggerEvent"
            raise TriggerError(msg)
        try:
            payload = serde.serialize(event.payload)
        except serde.SerdeError as exc:
            msg = f"{workload.classpath} yielded a payload that cannot be sent: {exc}"
            raise TriggerError(msg) from exc
        xcoms = _encode_xcoms(workload.classpath, event) if isinstance(event, TaskEndEvent) else None
        self._sink.event(EventOut(workload.trigger_id, uuid.uuid4().hex, event.event_type, payload, time.time(), xcoms))

    async def _cleanup(self, trigger_id: int, trigger: BaseTrigger) -> None:
        try:
            async with asyncio.timeout(self._cleanup_timeout_s):
                await trigger.cleanup()
        except asyncio.CancelledError:
            # Our own task being cancelled again while cleaning up: the cleanup is abandoned, the cancel stands.
            _log.warning("trigger %s: cleanup interrupted", trigger_id)
            raise
        except Exception:  # noqa: BLE001 - a failing cleanup is logged, never spreads
            _log.exception("trigger %s: cleanup failed", trigger_id)
