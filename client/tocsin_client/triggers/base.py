"""What a trigger is: ``BaseTrigger`` yields ``TriggerEvent``s, or a terminal event that ends its task."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tocsin_client.triggers.runtime import TriggerContext

__all__ = [
    "BaseTrigger",
    "EventType",
    "TaskEndEvent",
    "TaskFailedEvent",
    "TaskSkippedEvent",
    "TaskSuccessEvent",
    "TriggerEvent",
]

EventType = Literal["resume", "task_success", "task_failed", "task_skipped"]


class TriggerEvent:
    """The trigger fired: the deferred task resumes with ``payload`` (serde-encodable) under ``event``."""

    event_type: ClassVar[EventType] = "resume"

    def __init__(self, payload: Any) -> None:
        self.payload = payload

    @property
    def terminal(self) -> bool:
        """Whether the event ends the task instead of resuming it."""
        return self.event_type != "resume"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self.__dict__ == other.__dict__)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the payload it carries

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__name__}({fields})"


class TaskEndEvent(TriggerEvent):
    """The trigger ends its task directly in ``task_state``, optionally with ``xcoms`` (key → serde-encodable value).

    The XComs travel inside the event: the server stores them and ends the task in one transaction.
    """

    task_state: ClassVar[str]

    def __init__(self, *, xcoms: dict[str, Any] | None = None) -> None:
        super().__init__(self.task_state)
        self.xcoms = xcoms


class TaskSuccessEvent(TaskEndEvent):
    """End the task as ``success``."""

    event_type = "task_success"
    task_state = "success"


class TaskFailedEvent(TaskEndEvent):
    """End the task as ``failed``."""

    event_type = "task_failed"
    task_state = "failed"


class TaskSkippedEvent(TaskEndEvent):
    """End the task as ``skipped``."""

    event_type = "task_skipped"
    task_state = "skipped"


class BaseTrigger(abc.ABC):
    """A small asynchronous wait that a triggerer runs on behalf of a deferred task.

    Subclasses implement ``serialize`` (how the trigger is stored and rebuilt as ``cls(**kwargs)``) and
    ``run`` as an async generator; the runner cancels ``run`` when the trigger is no longer needed and always
    awaits ``cleanup`` afterwards.
    """

    _context: TriggerContext | None = None

    @property
    def context(self) -> TriggerContext:
        """The runtime helpers (API client, task instance identity), set by the runner before ``run``."""
        if self._context is None:
            msg = f"{type(self).__name__} has no context: the runner sets it before run()"
            raise RuntimeError(msg)
        return self._context

    @context.setter
    def context(self, value: TriggerContext) -> None:
        self._context = value

    @abc.abstractmethod
    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and the serde-encodable kwargs that rebuild this trigger."""

    @abc.abstractmethod
    def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait, then yield events; implement as ``async def run(self) -> AsyncIterator[TriggerEvent]``."""

    async def cleanup(self) -> None:  # noqa: B027  # optional hook; most triggers hold nothing to release
        """Release what ``run`` held; called after ``run`` ends or is cancelled."""

    def __repr__(self) -> str:
        classpath, kwargs = self.serialize()
        return f"<{classpath} {kwargs!r}>"
