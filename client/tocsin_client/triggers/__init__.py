"""Trigger authoring: subclass ``BaseTrigger``; builtins are stored as ``tocsin_client.triggers.<Name>``."""

from __future__ import annotations

from tocsin_client.triggers.base import (
    BaseTrigger,
    EventType,
    TaskEndEvent,
    TaskFailedEvent,
    TaskSkippedEvent,
    TaskSuccessEvent,
    TriggerEvent,
)
from tocsin_client.triggers.builtins import (
    DagRunStateTrigger,
    DateTimeTrigger,
    FileTrigger,
    HttpPollTrigger,
    TaskStateTrigger,
    TimeDeltaTrigger,
)
from tocsin_client.triggers.runtime import TriggerContext

__all__ = [
    "BaseTrigger",
    "DagRunStateTrigger",
    "DateTimeTrigger",
    "EventType",
    "FileTrigger",
    "HttpPollTrigger",
    "TaskEndEvent",
    "TaskFailedEvent",
    "TaskSkippedEvent",
    "TaskStateTrigger",
    "TaskSuccessEvent",
    "TimeDeltaTrigger",
    "TriggerContext",
    "TriggerEvent",
]
