"""``watch_task_instances``: the change feed as an iterator that reconnects and resumes without loss or repeat.

The feed (``watchTaskInstanceChanges`` as ``application/x-ndjson``) sends one ``change`` line per task-instance
change in commit order, each with a ``version`` larger than every earlier one, and ``bookmark`` lines carrying the
newest version: first of all (the version the stream starts after), then every 10 seconds without a change. The
iterator keeps the last version it yielded or was bookmarked; when the stream breaks (connection lost or refused,
server restarted, 5xx, 429 because the server's stream cap is reached, silence longer than the read timeout), it
opens a new stream ``after`` that version, after a capped, jittered backoff. So every change reaches the caller
once, in order. What waiting cannot fix is raised at once: 410 (``HistoryExpiredError``, the resume point is older
than the retained history), 401/403 (the token), any other 4xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar, cast

import msgspec

from tocsin_client._http import httpx
from tocsin_client.errors import APIError, DecodeError, TocsinError, TransportError
from tocsin_client.generated.models import ChangeBookmark, ChangeStreamItem, TaskInstanceChange

if TYPE_CHECKING:
    from tocsin_client._client import AsyncClient, Client, _BaseClient

__all__ = ["DEFAULT_READ_TIMEOUT_S", "AsyncWatch", "Backoff", "Watch"]

PATH: Final = "/api/v1/task-instances/changes"
OPERATION: Final = "watchTaskInstanceChanges"
_MEDIA_TYPE: Final = "application/x-ndjson"
DEFAULT_READ_TIMEOUT_S: Final = 30.0
"""Seconds of silence after which a stream counts as dead: three of the server's 10-second bookmark intervals."""
_ITEM_TYPES: Final = frozenset({"change", "bookmark"})
_DECODER: Final[msgspec.json.Decoder[TaskInstanceChange | ChangeBookmark]] = msgspec.json.Decoder(ChangeStreamItem)
_log = logging.getLogger("tocsin_client.watch")

T = TypeVar("T", bound=TaskInstanceChange | ChangeBookmark)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before opening a stream again: doubling from ``initial_s`` up to ``max_s``, jittered.

    Half of each delay is random, so that watchers dropped together (a server restart) do not come back together.
    A ``Retry-After`` the server sends (503, 429) is waited at least, up to ``max_s``.
    """

    initial_s: float = 0.1
    max_s: float = 10.0
    multiplier: float = 2.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds before reconnection ``attempt`` (0: the first since the stream last worked)."""
        ceiling = min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))
        jittered = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311  # spreading retries, not a secret
        return max(jittered, min(retry_after_s, self.max_s)) if retry_after_s else jittered


class _Feed:
    """What both watches share: the resume point, the request, what each line means and whether to retry."""

    def __init__(
        self,
        client: _BaseClient,
        after: int | None,
        filters: Mapping[str, object],
        backoff: Backoff,
        bookmarks: bool,
        read_timeout_s: float,
        give_up_after_s: float | None,
    ) -> None:
        self.client = client
        self.version = after
        self.filters = dict(filters)
        self.bookmarks = bookmarks
        self.backoff = backoff
        self.read_timeout_s = read_timeout_s
        self.give_up_after_s = give_up_after_s
        self.attempt = 0
        self.failing_since: float | None = None
        self.items_this_stream = 0
        self.retry_after_s: float | None = None

    def request(self, timeout: httpx.Timeout) -> dict[str, Any]:
        """The stream request's arguments: after the resume point, with a read timeout above the bookmark interval."""
        args = self.client._request_args(OPERATION, {"after": self.version, **self.filters}, None)
        args["headers"]["Accept"] = f"{_MEDIA_TYPE}, application/problem+json"
        args["timeout"] = httpx.Timeout(
            timeout.connect, read=self.read_timeout_s, write=timeout.write, pool=timeout.pool
        )
        self.items_this_stream = 0
        return args

    def opened(self, response: httpx.Response) -> APIError | None:
        """Once the status is known: the error it means (its body read), or None for a stream."""
        self.client._refresh_token(response)
        if response.status_code == 200:
            return None
        self.retry_after_s = _retry_after(response.headers)  # 503 and 429 say when to come back
        return self.client._error(response, method="GET", path=PATH)

    def accept(self, line: str) -> TaskInstanceChange | ChangeBookmark | None:
        """The item a line brings the caller, or None (a blank line, a change already yielded, an unasked bookmark)."""
        if not line.strip():
            return None
        try:
            item = _DECODER.decode(line)
        except msgspec.DecodeError as exc:
            if _unknown_item_type(line):  # a kind of line added after this client: not for it
                return None
            msg = f"GET {PATH}: a stream line does not fit ChangeStreamItem: {exc}: {line[:200]!r}"
            raise DecodeError(msg) from exc
        self.items_this_stream += 1
        if self.items_this_stream == 2:  # the stream proved itself beyond its opening bookmark: back off from 0
            self.attempt, self.failing_since = 0, None
        if isinstance(item, ChangeBookmark):
            self.version = item.version if self.version is None else max(self.version, item.version)
            return item if self.bookmarks else None
        if self.version is not None and item.version <= self.version:
            return None  # yielded before the stream was resumed; the feed's order makes this the only repeat
        self.version = item.version
        return item

    def retry_delay(self, error: TocsinError) -> float:
        """Seconds to wait before reconnecting after ``error``; raises it when retrying cannot help or time is up."""
        if not error.transient:
            raise error
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        elif self.give_up_after_s is not None and now - self.failing_since > self.give_up_after_s:
            raise error
        delay = self.backoff.delay(self.attempt, self.retry_after_s)
        self.retry_after_s = None
        self.attempt += 1
        _log.info(
            "watch of task-instance changes: %s; reconnecting after version %s in %.2f s", error, self.version, delay
        )
        return delay


def _retry_after(headers: httpx.Headers) -> float | None:
    try:
        value = float(headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _unknown_item_type(line: str) -> bool:
    try:
        data = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return False
    return isinstance(data, dict) and isinstance(data.get("type"), str) and data["type"] not in _ITEM_TYPES


def _wake(response: httpx.Response | None) -> None:
    """Make a read blocked on ``response`` in another thread fail at once: shut its socket down (closing the file
    descriptor alone does not wake a blocked ``recv``)."""
    stream = None if response is None else response.extensions.get("network_stream")
    sock = None if stream is None else stream.get_extra_info("socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _request_error(exc: httpx.RequestError | httpx.StreamError) -> httpx.RequestError:
    """A stream error (the response was closed under the read) as the transport error it amounts to."""
    return exc if isinstance(exc, httpx.RequestError) else httpx.ReadError(str(exc))


def _ended() -> TransportError:
    return TransportError(f"GET {PATH}: the server ended the stream")


class AsyncWatch(Generic[T]):
    """An async iterator of changes (and bookmarks, if asked) that reconnects and resumes by itself.

    ``version`` is the resume point: the last version yielded or bookmarked. Close it (``aclose()``, or use it as
    ``async with``) to release its connection when leaving the loop early.
    """

    def __init__(self, client: AsyncClient, feed: _Feed) -> None:
        self._client = client
        self._feed = feed
        self._items = self._run()  # the generator holds the stream's connection between two items
        self._response: httpx.Response | None = None
        self._closed = False

    @property
    def version(self) -> int | None:
        """The last version yielded or bookmarked: pass it as ``after`` to carry on from here in another watch."""
        return self._feed.version

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        return await anext(self._items)

    async def aclose(self) -> None:
        """Close the stream's connection; the iteration ends. Safe while another task awaits the next item (that
        task's iteration ends too)."""
        self._closed = True
        if not getattr(self._items, "ag_running", False):  # typeshed's AsyncGenerator protocol lacks it
            await self._items.aclose()
        elif self._response is not None:  # another task is reading the stream: end its read, the generator returns
            await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[T, None]:
        feed, http = self._feed, self._client._http
        while not self._closed:
            try:
                async with http.stream("GET", PATH, **feed.request(http.timeout)) as response:
                    self._response = response
                    if response.status_code != 200:
                        await response.aread()
                    if (error := feed.opened(response)) is not None:
                        raise error
                    async for line in response.aiter_lines():
                        if (item := feed.accept(line)) is not None:
                            yield cast("T", item)
                raise _ended()
            except (httpx.RequestError, httpx.StreamError) as exc:
                if self._closed:
                    return  # closed by another task: the read it was in failed on purpose
                delay = feed.retry_delay(self._client._transport_error(_request_error(exc), "GET", PATH))
            except (APIError, TransportError) as error:
                delay = feed.retry_delay(error)
            finally:
                self._response = None
            if not self._closed:
                await asyncio.sleep(delay)


class Watch(Generic[T]):
    """An iterator of changes (and bookmarks, if asked) that reconnects and resumes by itself; see ``AsyncWatch``."""

    def __init__(self, client: Client, feed: _Feed) -> None:
        self._client = client
        self._feed = feed
        self._items = self._run()  # the generator holds the stream's connection between two items
        self._response: httpx.Response | None = None
        self._closed = False

    @property
    def version(self) -> int | None:
        """The last version yielded or bookmarked: pass it as ``after`` to carry on from here in another watch."""
        return self._feed.version

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        """Close the stream's connection; the iteration ends. Safe from another thread than the one iterating."""
        self._closed = True
        try:
            self._items.close()
        except ValueError:  # "generator already executing": another thread is blocked reading the stream
            _wake(self._response)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self) -> Generator[T, None, None]:
        feed, http = self._feed, self._client._http
        while not self._closed:
            try:
                with http.stream("GET", PATH, **feed.request(http.timeout)) as response:
                    self._response = response
                    if response.status_code != 200:
                        response.read()
                    if (error := feed.opened(response)) is not None:
                        raise error
                    for line in response.iter_lines():
                        if (item := feed.accept(line)) is not None:
                            yield cast("T", item)
                raise _ended()
            except (httpx.RequestError, httpx.StreamError) as exc:
                if self._closed:
                    return  # closed from another thread: the read it was blocked in failed on purpose
                delay = feed.retry_delay(self._client._transport_error(_request_error(exc), "GET", PATH))
            except (APIError, TransportError) as error:
                delay = feed.retry_delay(error)
            finally:
                self._response = None
            if not self._closed:
                time.sleep(delay)
