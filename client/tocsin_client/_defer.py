"""Defer a task instance on a trigger object: the state update built from ``trigger.serialize()``.

The API takes a deferral as a classpath plus serde-encoded kwargs (``DeferredStateUpdate``). Writing that JSON
by hand is where envelopes get mistyped; the trigger already knows both halves, so the body is built from it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

import msgspec

from tocsin_client import serde
from tocsin_client.generated.models import DeferredStateUpdate

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tocsin_client.triggers.base import BaseTrigger

__all__ = ["DEFAULT_NEXT_METHOD", "deferral"]

DEFAULT_NEXT_METHOD: Final = "execute_complete"
# The spec's pattern for DeferredStateUpdate.classpath; checked here so the mistake is named before any request.
_CLASSPATH: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def deferral(
    trigger: BaseTrigger,
    *,
    next_method: str = DEFAULT_NEXT_METHOD,
    next_kwargs: Mapping[str, Any] | None = None,
    trigger_timeout: timedelta | float | None = None,
    start_from_trigger: bool = False,
) -> DeferredStateUpdate:
    """The ``deferred`` state update that hands the task instance to ``trigger``.

    Args:
        trigger: The trigger; its ``serialize()`` gives the classpath the triggerer imports and the kwargs it
            rebuilds the trigger from (serde-encoded here, so datetimes, timedeltas and registered classes travel).
        next_method: The task's method to resume with when the trigger fires.
        next_kwargs: Extra kwargs for ``next_method``; the event's payload joins them under ``event``.
        trigger_timeout: After this long (a timedelta or seconds) the deferral fails with "trigger timeout"; None: never.
        start_from_trigger: Start a task instance that has not run (``none``, ``scheduled`` or ``queued``) on the
            trigger, no worker needed: the trigger ends it with a terminal event or resumes it to a worker.
            False (the default) defers a running task instance and leaves the field out of the body, so the
            request also suits API versions older than 2027-01-01, which do not know it.

    Raises:
        ValueError: The classpath cannot be imported by a triggerer (not dotted, or defined in ``__main__``).
        tocsin_client.serde.SerializationError: A kwarg has a type serde cannot encode (register the class).
    """
    classpath, kwargs = trigger.serialize()
    if classpath.startswith("__main__."):
        msg = (
            f"{type(trigger).__name__} is defined in __main__, which a triggerer process cannot import: "
            "move the class to a module the triggerer can import (installed, or on its PYTHONPATH)"
        )
        raise ValueError(msg)
    if not _CLASSPATH.fullmatch(classpath):
        msg = f"{type(trigger).__name__}.serialize() returned {classpath!r}, not a dotted path such as 'package.module.Class'"
        raise ValueError(msg)
    seconds = trigger_timeout.total_seconds() if isinstance(trigger_timeout, timedelta) else trigger_timeout
    return DeferredStateUpdate(
        classpath=classpath,
        trigger_kwargs=serde.serialize(dict(kwargs)),
        next_method=next_method,
        trigger_timeout=None if seconds is None else float(seconds),
        next_kwargs=msgspec.UNSET if next_kwargs is None else serde.serialize(dict(next_kwargs)),
        start_from_trigger=True if start_from_trigger else msgspec.UNSET,
    )
