"""``Client`` and ``AsyncClient``: the generated operations, each client over one HTTP connection pool."""

from __future__ import annotations

import copy
import ssl
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self, overload

import msgspec
from tocsin_wire.headers import REFRESH_HEADER, VERSION_HEADER

from tocsin_client._defer import DEFAULT_NEXT_METHOD, deferral
from tocsin_client._http import httpx
from tocsin_client._problem import parse_problem
from tocsin_client._watch import DEFAULT_READ_TIMEOUT_S, AsyncWatch, Backoff, Watch, _Feed
from tocsin_client.errors import APIError, DecodeError, TransportError, error_for_status
from tocsin_client.generated.operations import API_VERSION, AsyncOperations, SyncOperations

if TYPE_CHECKING:
    from datetime import timedelta
    from uuid import UUID

    from tocsin_client.generated.models import ChangeBookmark, TaskInstance, TaskInstanceChange, TaskInstanceStateName
    from tocsin_client.triggers.base import BaseTrigger

DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)
LONG_OPERATION_TIMEOUTS: Final = {"completeJob": httpx.Timeout(120.0, connect=5.0)}
"""Operations whose work grows with what they hand back: completing a job releases every trigger it holds, a
single UPDATE of a million rows for a full triggerer host, which takes longer than ``DEFAULT_TIMEOUT`` allows."""
DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)
DEFAULT_BACKOFF: Final = Backoff()
_ACCEPT: Final = "application/json, application/problem+json"
OPERATION_EXTENSION: Final = "tocsin.operation"
"""The httpx request extension that carries the operationId of the call."""
# Errors that say the request can never be sent as it is; retrying them only hides a bug.
_PERMANENT_TRANSPORT_ERRORS: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


# Building a Decoder costs more than decoding a small body, so build one per type.
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(response_type: type[Any]) -> msgspec.json.Decoder[Any]:
    decoder = _DECODERS.get(response_type)
    if decoder is None:
        decoder = _DECODERS[response_type] = msgspec.json.Decoder(response_type)
    return decoder


def _query(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Drop absent (None) parameters; a list becomes a repeated parameter."""
    query: list[tuple[str, str]] = []
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        query.extend((name, _query_value(item)) for item in values if item is not None)
    return query


def _query_value(value: object) -> str:
    if isinstance(value, Enum):  # a generated enum travels as its value, whatever str() of its kind says
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):  # RFC 3339, as the spec's date-time format says; str() puts a space in
        return value.isoformat()
    return str(value)


def _transport_error(exc: httpx.RequestError, method: str, path: str) -> TransportError:
    transient = isinstance(exc, httpx.TransportError) and not isinstance(exc, _PERMANENT_TRANSPORT_ERRORS)
    return TransportError(f"{method} {path}: {type(exc).__name__}: {exc}", transient=transient)


class _BaseClient:
    """What both clients share: headers, the token, and turning a response into a value or an exception."""

    def __init__(self, *, token: str | None, api_version: str) -> None:
        self._token = token
        self._api_version = api_version

    @property
    def token(self) -> str | None:
        """The bearer token sent with every request; replaced when the server refreshes it."""
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value

    def with_token(self, token: str | None) -> Self:
        """A client with its own bearer token over this client's connection pool (closing it closes the pool).

        A triggerer runs thousands of triggers, each with its own task-instance token: one pool serves them all.
        """
        clone = copy.copy(self)
        clone._token = token
        return clone

    @property
    def api_version(self) -> str:
        """The API version pinned in the ``Tocsin-API-Version`` header."""
        return self._api_version

    def _headers(self, *, has_body: bool) -> dict[str, str]:
        headers = {VERSION_HEADER: self._api_version, "Accept": _ACCEPT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers

    def _request_args(self, operation: str, params: Mapping[str, Any], body: object | None) -> dict[str, Any]:
        content = None if body is None else msgspec.json.encode(body)
        args: dict[str, Any] = {
            "params": _query(params),
            "content": content,
            "headers": self._headers(has_body=body is not None),
            # the operation travels with the request, so tracing (tocsin_client._tracing) can name its span
            "extensions": {OPERATION_EXTENSION: operation},
        }
        if (timeout := LONG_OPERATION_TIMEOUTS.get(operation)) is not None:
            args["timeout"] = timeout
        return args

    def _refresh_token(self, response: httpx.Response) -> None:
        # Any response may carry a refreshed token, an error as much as a success.
        if refreshed := response.headers.get(REFRESH_HEADER):
            self._token = refreshed

    @staticmethod
    def _error(response: httpx.Response, *, method: str, path: str) -> APIError:
        """The exception for an unexpected status, its problem parsed from the (read) body."""
        status = response.status_code
        return error_for_status(status)(status, parse_problem(status, response.content), method=method, path=path)

    _transport_error = staticmethod(_transport_error)

    def _handle(
        self, response: httpx.Response, *, method: str, path: str, expected: int, response_type: type[Any] | None
    ) -> Any:
        self._refresh_token(response)
        status = response.status_code
        if status != expected:
            raise self._error(response, method=method, path=path)
        if response_type is None:
            return None
        try:
            return _decoder(response_type).decode(response.content)
        except msgspec.DecodeError as exc:
            name = getattr(response_type, "__name__", repr(response_type))
            msg = f"{method} {path}: the {status} body does not fit {name}: {exc}"
            raise DecodeError(msg) from exc


class Client(_BaseClient, SyncOperations):
    """A blocking client: one method per operation, e.g. ``client.get_variable("greeting")``.

    Args:
        base_url: Where the API server listens, e.g. ``http://localhost:8080``.
        token: The bearer token.
        api_version: The dated API version every request asks for.
        timeout: Seconds (or an ``httpx.Timeout``) for each request.
        limits: The connection pool's limits.
        transport: An httpx transport to send through instead of the network (tests use ``httpx.MockTransport``).
        verify: TLS verification, as httpx takes it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_version: str = API_VERSION,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(token=token, api_version=api_version)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, limits=limits, transport=transport, verify=verify)

    def _call(
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
        try:
            response = self._http.request(method, path, **self._request_args(operation, params, body))
        except httpx.RequestError as exc:
            raise self._transport_error(exc, method, path) from exc
        return self._handle(response, method=method, path=path, expected=expected, response_type=response_type)

    def defer_task_instance(
        self,
        task_instance_id: UUID,
        trigger: BaseTrigger,
        *,
        next_method: str = DEFAULT_NEXT_METHOD,
        next_kwargs: Mapping[str, Any] | None = None,
        trigger_timeout: timedelta | float | None = None,
        start_from_trigger: bool = False,
    ) -> TaskInstance:
        """Defer a running task instance on ``trigger`` (``updateTaskInstanceState`` with a ``deferred`` body).

        The body comes from ``trigger.serialize()``: its classpath and serde-encoded kwargs. When the trigger
        fires, the task instance is scheduled with ``next_method`` and ``next_kwargs`` plus ``{"event": payload}``.
        With ``start_from_trigger=True`` the task instance must not have run yet (``none``, ``scheduled`` or
        ``queued``; API version 2027-01-01): it starts on the trigger, and a terminal event ends it there.
        See ``tocsin_client._defer.deferral`` for the arguments and docs/triggers.md for the whole path.
        """
        body = deferral(
            trigger,
            next_method=next_method,
            next_kwargs=next_kwargs,
            trigger_timeout=trigger_timeout,
            start_from_trigger=start_from_trigger,
        )
        return self.update_task_instance_state(task_instance_id, body)

    @overload
    def watch_task_instances(
        self,
        after: int | None = None,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        state: TaskInstanceStateName | None = None,
        bookmarks: Literal[False] = False,
        backoff: Backoff = DEFAULT_BACKOFF,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        give_up_after_s: float | None = None,
    ) -> Watch[TaskInstanceChange]: ...
    @overload
    def watch_task_instances(
        self,
        after: int | None = None,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        state: TaskInstanceStateName | None = None,
        bookmarks: Literal[True],
        backoff: Backoff = DEFAULT_BACKOFF,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        give_up_after_s: float | None = None,
    ) -> Watch[TaskInstanceChange | ChangeBookmark]: ...
    def watch_task_instances(
        self,
        after: int | None = None,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        state: TaskInstanceStateName | None = None,
        bookmarks: bool = False,
        backoff: Backoff = DEFAULT_BACKOFF,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        give_up_after_s: float | None = None,
    ) -> Watch[Any]:
        """Every task-instance change after version ``after``, in commit order, as they commit (``watchTaskInstanceChanges``).

        An iterator that never ends by itself: it streams the feed, reconnects when the stream breaks (connection
        lost, server restarted, 5xx, 429) after a capped, jittered ``backoff``, and resumes after the last version
        it yielded or was bookmarked, so each change is yielded once. ``after=None`` starts at the newest version
        (only changes committed once the first stream is open); ``bookmarks=True`` also yields the feed's
        ``ChangeBookmark``s. The watch's ``version`` is its resume point. ``read_timeout_s`` (keep it above the
        server's bookmark interval, ``TOCSIN_WATCH_BOOKMARK_S``, 10 s by default) is how long a silent stream counts
        as alive; ``give_up_after_s`` re-raises the
        last transient error once reconnecting has failed that long (None: keep trying).

        Raises:
            HistoryExpiredError: 410, ``after`` is older than the retained history (``exc.oldest_version``).
            UnauthorizedError, ForbiddenError: the token is refused or lacks scope ``worker``/``admin``; not retried.
            APIError: any other 4xx (a bad filter), not retried; DecodeError: a line that does not fit the contract.
        """
        filters = {"dag_id": dag_id, "run_id": run_id, "state": state}
        feed = _Feed(self, after, filters, backoff, bookmarks, read_timeout_s, give_up_after_s)
        return Watch(self, feed)

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_BaseClient, AsyncOperations):
    """An asyncio client: one coroutine method per operation, e.g. ``await client.get_variable("greeting")``.

    Takes the same arguments as ``Client``; ``transport`` is an ``httpx.AsyncBaseTransport``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_version: str = API_VERSION,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(token=token, api_version=api_version)
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, limits=limits, transport=transport, verify=verify
        )

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
        try:
            response = await self._http.request(method, path, **self._request_args(operation, params, body))
        except httpx.RequestError as exc:
            raise self._transport_error(exc, method, path) from exc
        return self._handle(response, method=method, path=path, expected=expected, response_type=response_type)

    async def defer_task_instance(
        self,
        task_instance_id: UUID,
        trigger: BaseTrigger,
        *,
        next_method: str = DEFAULT_NEXT_METHOD,
        next_kwargs: Mapping[str, Any] | None = None,
        trigger_timeout: timedelta | float | None = None,
        start_from_trigger: bool = False,
    ) -> TaskInstance:
        """Defer a task instance on ``trigger`` (``start_from_trigger``: one that has not run); the coroutine twin
        of ``Client.defer_task_instance``."""
        body = deferral(
            trigger,
            next_method=next_method,
            next_kwargs=next_kwargs,
            trigger_timeout=trigger_timeout,
            start_from_trigger=start_from_trigger,
        )
        return await self.update_task_instance_state(task_instance_id, body)

    @overload
    def watch_task_instances(
        self,
        after: int | None = None,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        state: TaskInstanceStateName | None = None,
        bookmarks: Literal[False] = False,
        backoff: Backoff = DEFAULT_BACKOFF,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        give_up_after_s: float | None = None,
    ) -> AsyncWatch[TaskInstanceChange]: ...
    @overload
    def watch_task_instances(
        self,
        after: int | None = None,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        state: TaskInstanceStateName | None = None,
        bookmarks: Literal[True],
        backoff: Backoff = DEFAULT_BACKOFF,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        give_up_after_s: float | None = None,
    ) -> AsyncWatch[TaskInstanceChange | ChangeBookmark]: ...
    def watch_task_instances(
        self,
        after: int | None = None,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        state: TaskInstanceStateName | None = None,
        bookmarks: bool = False,
        backoff: Backoff = DEFAULT_BACKOFF,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        give_up_after_s: float | None = None,
    ) -> AsyncWatch[Any]:
        """The async twin of ``Client.watch_task_instances``: ``async for change in client.watch_task_instances()``."""
        filters = {"dag_id": dag_id, "run_id": run_id, "state": state}
        feed = _Feed(self, after, filters, backoff, bookmarks, read_timeout_s, give_up_after_s)
        return AsyncWatch(self, feed)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
