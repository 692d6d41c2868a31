"""``TokenGrants``: the supervisor's side of the token broker (the runner's side is ``_tokens.TokenBroker``).

A trigger whose task-instance token expired asks, through its runner, for a fresh one; the trigger's workload,
fetched again, carries it. Each request is a short task of its own, so one slow answer delays no other trigger;
the tasks are kept (and cancelled on shutdown) so none is left dangling, and an unexpected error in one is logged
and answered with no token, so the trigger's call fails instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from tocsin_client.errors import TocsinError
from tocsin_client.generated.models import WorkloadsBody

if TYPE_CHECKING:
    from tocsin_client._client import AsyncClient
    from tocsin_client.triggerer._stats import Stats

__all__ = ["TokenGrants"]

_log = logging.getLogger("tocsin.triggerer")


class TokenGrants:
    """Answers runners' token requests.

    Args:
        client: The job's client.
        stats: Counters to update.
        grant: Sends the answer (a token, or None when the job no longer holds the trigger) to the runner.
    """

    def __init__(self, client: AsyncClient, stats: Stats, grant: Callable[[int, str | None], None]) -> None:
        self._client = client
        self._stats = stats
        self._send_grant = grant
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, trigger_id: int) -> None:
        """A runner asks for a fresh token for ``trigger_id``."""
        task = asyncio.create_task(self._grant(trigger_id), name=f"token grant {trigger_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _grant(self, trigger_id: int) -> None:
        token = None
        try:
            answer = await self._client.get_trigger_workloads(WorkloadsBody(trigger_ids=[trigger_id]))
            token = next((w.token for w in answer.workloads if w.trigger_id == trigger_id), None)
            _log.info("trigger %s: its task-instance token expired; %s", trigger_id, "renewed" if token else "not held")
        except TocsinError as exc:
            self._stats.api_error("getTriggerWorkloads")
            _log.warning("trigger %s: no fresh token: %s", trigger_id, exc)
        except Exception:  # noqa: BLE001 - a bug here must not leave the trigger waiting for an answer
            _log.exception("trigger %s: no fresh token", trigger_id)
        self._send_grant(trigger_id, token)

    async def close(self) -> None:
        """Cancel the requests still in flight."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
