"""Fresh task-instance tokens for triggers that sleep longer than their token lives.

The server refreshes a task-instance token through a response header, but only when the trigger calls the API.
A trigger that waits an hour and then asks for a task state would present an expired token. Its client
(``TriggerClient``) answers such a 401 by asking the supervisor for a fresh token (the supervisor fetches the
trigger's workload again, which carries a new one) and retries the call once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from tocsin_client._client import AsyncClient
from tocsin_client.errors import UnauthorizedError

__all__ = ["TokenBroker", "TriggerClient"]

REQUEST_TIMEOUT_S: Final = 30.0


class TriggerClient(AsyncClient):
    """An ``AsyncClient`` for one trigger: a 401 gets one retry with a token from ``refresher``."""

    trigger_id: int | None = None
    refresher: Callable[[int], Awaitable[str | None]] | None = None

    def for_trigger(self, trigger_id: int, token: str | None) -> TriggerClient:
        """A view with this trigger's token over the shared pool."""
        clone = self.with_token(token)
        clone.trigger_id = trigger_id
        return clone

    async def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        expected: int,
        params: dict[str, Any],
        body: object | None,
        response_type: type[Any] | None,
    ) -> Any:
        arguments: dict[str, Any] = {
            "operation": operation,
            "expected": expected,
            "params": params,
            "body": body,
            "response_type": response_type,
        }
        try:
            return await super()._call(method, path, **arguments)
        except UnauthorizedError:
            if self.trigger_id is None or self.refresher is None:
                raise
            token = await self.refresher(self.trigger_id)
            if not token or token == self.token:
                raise
            self.token = token
            return await super()._call(method, path, **arguments)


class TokenBroker:
    """The runner's side: one outstanding request per trigger, answered by ``grant``."""

    def __init__(self, send_request: Callable[[int], None]) -> None:
        self._send_request = send_request
        self._waiting: dict[int, asyncio.Future[str | None]] = {}

    async def fresh(self, trigger_id: int) -> str | None:
        """A fresh token for the trigger, or None when the supervisor has none (the trigger is no longer held)."""
        future = self._waiting.get(trigger_id)
        if future is None:
            future = self._waiting[trigger_id] = asyncio.get_running_loop().create_future()
            self._send_request(trigger_id)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                return await asyncio.shield(future)
        except TimeoutError:
            if self._waiting.get(trigger_id) is future:
                del self._waiting[trigger_id]  # the next refusal asks again
            return None

    def grant(self, trigger_id: int, token: str | None) -> None:
        """The supervisor's answer."""
        future = self._waiting.pop(trigger_id, None)
        if future is not None and not future.done():
            future.set_result(token)
