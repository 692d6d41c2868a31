"""Wakeups for the watch feed: one per server process, shared by every watcher in it.

A watcher takes a ``ticket`` before it reads the change log and, when the read found nothing, waits on it; the
ticket is set by the next notice, so a change committed between the read and the wait is never slept through.
Waiting costs a watcher nothing but an awaited event: no polling loop per watcher.

Notices come from this process's own commits (``changes.track``'s after-commit callback) and, on PostgreSQL,
from every replica's: the change-log writer sends ``pg_notify`` in its transaction (delivered at commit) and
this process LISTENs on one connection of its own. While that connection is down (PostgreSQL restarting) the
notices fall back to one tick per ``FALLBACK_TICK_S``, so a watcher re-reads the log at that pace and misses
nothing; after reconnecting, one notice covers whatever committed in between.

The same connection carries other channels (``subscribe``): the read cache's invalidations
(services/read_cache.py). A subscriber is told as soon as the connection is lost and again once it is back and
LISTENs on every channel, so it can stop trusting what it holds for the time no notice could arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from tocsin_server.services.changes import CHANNEL

if TYPE_CHECKING:
    import asyncpg

_log = logging.getLogger("tocsin.server")

FALLBACK_TICK_S: Final = 1.0
"""While the LISTEN connection is down, every watcher is woken this often to re-read the log."""
KEEPALIVE_S: Final = 10.0
"""How often the LISTEN connection is checked; a connection lost without a word is noticed within this."""


class ChangeNotices:
    """Broadcast wakeups for the watchers of one server process."""

    def __init__(self, postgres_dsn: str | None = None) -> None:
        self._dsn = postgres_dsn
        self._event: asyncio.Event | None = None
        self._closing = False
        self._listener: asyncio.Task[None] | None = None
        self.listening = postgres_dsn is None
        """Whether notices arrive as changes commit (always on SQLite: one process writes and reads)."""
        self._channels: dict[str, Callable[[str], None]] = {}
        self._on_listening: list[Callable[[bool], None]] = []

    def subscribe(self, channel: str, on_payload: Callable[[str], None], on_listening: Callable[[bool], None]) -> None:
        """Before ``start``: pass on ``channel``'s payloads too, and tell whether notices arrive — ``False`` at once
        when the connection is lost (from then on anything may commit unheard), ``True`` once it LISTENs again on
        every channel. Never called on SQLite, which has no LISTEN connection."""
        self._channels[channel] = on_payload
        self._on_listening.append(on_listening)

    def _set_listening(self, listening: bool) -> None:
        if self.listening == listening:
            return
        self.listening = listening
        for callback in self._on_listening:
            callback(listening)

    @property
    def closing(self) -> bool:
        """The server is stopping: long polls answer and streams end now."""
        return self._closing

    def ticket(self) -> asyncio.Event:
        """Set by the next notice (or by closing): take it before reading the log, wait on it after."""
        if self._event is None:
            self._event = asyncio.Event()
            if self._closing:
                self._event.set()
        return self._event

    def notify(self) -> None:
        """Wake every watcher waiting now; later waiters wait for the next notice."""
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, ticket: asyncio.Event, timeout_s: float) -> None:
        """Until ``ticket`` is set or ``timeout_s`` passes, whichever comes first."""
        if timeout_s <= 0 or ticket.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await ticket.wait()

    def close(self) -> None:
        """End every wait now and every one to come: the server is shutting down."""
        self._closing = True
        self.notify()

    async def start(self) -> None:
        if self._dsn is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(self._dsn), name="tocsin-change-notices")

    async def stop(self) -> None:
        self.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self, dsn: str) -> None:
        """Hold one LISTEN connection for as long as the server runs, reconnecting after it is lost."""
        import asyncpg  # noqa: PLC0415 - the PostgreSQL extra is optional

        warned = False
        while True:
            connection: asyncpg.Connection[Any] | None = None
            try:
                connection = await asyncpg.connect(dsn, server_settings={"application_name": "tocsin change notices"})
                if warned:
                    _log.info("watch feed: change notices arrive again")
                    warned = False
                await self._hear(connection)
                raise ConnectionError("the LISTEN connection closed")  # one path for every loss
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: poll, then reconnect
                if not warned:
                    _log.warning(
                        "watch feed: change notices lost (%s); watchers poll every %.0f s%s",
                        exc,
                        FALLBACK_TICK_S,
                        "; the read cache is off until they are back" if self._channels else "",
                    )
                    warned = True
            finally:
                self._set_listening(False)
                if connection is not None:
                    connection.terminate()
            self.notify()  # a tick: watchers re-read while no notices come
            await asyncio.sleep(FALLBACK_TICK_S)

    async def _hear(self, connection: asyncpg.Connection[Any]) -> None:
        """Pass on every notice until the connection is lost (closed, or silent to a keepalive)."""
        lost = asyncio.Event()

        def on_lost(_: object) -> None:
            self._set_listening(False)  # now, not when this task next runs: a subscriber stops trusting at once
            lost.set()

        connection.add_termination_listener(on_lost)
        await connection.add_listener(CHANNEL, self._on_notice)
        for channel, on_payload in self._channels.items():
            await connection.add_listener(channel, _payload_only(on_payload))
        if lost.is_set():
            return
        self._set_listening(True)
        self.notify()  # whatever committed while no one listened
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE_S):
                    await lost.wait()
            if not lost.is_set():
                async with asyncio.timeout(KEEPALIVE_S):
                    await connection.execute("SELECT 1")

    def _on_notice(self, _connection: object, _pid: int, _channel: str, _payload: str) -> None:
        self.notify()


def _payload_only(on_payload: Callable[[str], None]) -> Callable[[object, int, str, str], None]:
    def on_notice(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        on_payload(payload)

    return on_notice
