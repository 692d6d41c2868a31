"""An in-process cache of the hot runtime reads (variables, connections, XComs), kept true across replicas.

A cached answer is only as good as the news of the writes that replace it, so the cache serves only while news
is sure to arrive:

- every write of a cached row names its key in its own transaction (``services/read_invalidation.py``): on
  PostgreSQL a ``pg_notify`` that every server process hears at COMMIT on its one LISTEN connection
  (``services/change_notices.py``), and in the writing process an invalidation right after COMMIT, before the
  response is sent (a client reads its own write at once);
- while that LISTEN connection is down (lost, reconnecting, not yet LISTENing) the cache holds nothing and every
  read goes to the database: a write committed meanwhile would be news nobody heard. It is emptied once more when
  the connection is back, for what was read while it was down.

A read that misses races the writes: it can start before a write commits, get the old row, and come back after
that write's invalidation went by, which would store the old value for good. So a miss takes a ``ticket`` (the
epoch, bumped by every invalidation) before it reads and stores its answer only if no invalidation happened in
between. Over-invalidating is always safe; the epoch costs only the stores of reads in flight during a write.

Bounded: at most ``size`` entries, least recently used out first, and an answer weighing more than
``MAX_ENTRY_BYTES`` is never kept (its transfer dominates its cost anyway), so the cache holds at most about
``size × MAX_ENTRY_BYTES``. Entries hold decrypted connection passwords and variables: nothing here logs or shows
them (``repr`` gives counts only).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Final

from tocsin_server import metrics

__all__ = [
    "ABSENT",
    "MAX_ENTRY_BYTES",
    "MISS",
    "NO_CACHE",
    "CacheKey",
    "ReadCache",
    "connection_key",
    "variable_key",
    "xcom_key",
]

MAX_ENTRY_BYTES: Final = 16_384
"""An answer whose text weighs more than this is read from the database every time."""

_MISSED: Final = metrics.READ_CACHE_MISSES.labels("miss")
_OFF: Final = metrics.READ_CACHE_MISSES.labels("off")
"""Counted only when a read goes to the database anyway (a hit costs no metric: hits = requests − misses)."""

CacheKey = tuple[Hashable, ...]
"""A cached row's identity: its kind's letter, then its primary key (what the invalidations carry)."""


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


MISS: Final[Any] = _Marker("MISS")
"""``lookup``'s answer when the cache cannot answer: read the database."""
ABSENT: Final[Any] = _Marker("ABSENT")
"""A cached "no such row" (a 404 is a hot answer too: ``Variable.get`` with a default)."""


def variable_key(key: str) -> CacheKey:
    return ("v", key)


def connection_key(conn_id: str) -> CacheKey:
    return ("c", conn_id)


def xcom_key(dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> CacheKey:
    return ("x", dag_id, run_id, task_id, map_index, key)


class ReadCache:
    """The LRU of one server process (see the module's docstring). Not thread-safe: the event loop's alone."""

    def __init__(self, size: int, *, live: bool = False) -> None:
        self._size = max(size, 0)
        self._entries: OrderedDict[CacheKey, Any] = OrderedDict()
        self._epoch = 0
        self._live = live
        self.hits = 0
        self.misses = 0
        """Lookups answered here / sent to the database (by a cache of size above 0; tests read them)."""

    def __repr__(self) -> str:
        return f"ReadCache(size={self._size}, entries={len(self._entries)}, live={self._live})"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size

    @property
    def serving(self) -> bool:
        """Whether answers are kept and served now (a size above 0, and invalidations arriving)."""
        return self._live and self._size > 0

    def lookup(self, key: CacheKey) -> Any:
        """The cached answer (possibly ``ABSENT``), or ``MISS``."""
        if not self.serving:
            if self._size:
                self.misses += 1
                _OFF.inc()
            return MISS
        found = self._entries.get(key, MISS)
        if found is MISS:
            self.misses += 1
            _MISSED.inc()
        else:
            self.hits += 1
            self._entries.move_to_end(key)
        return found

    def ticket(self) -> int | None:
        """Taken before a missed read goes to the database; ``store`` keeps its answer only if it is still good."""
        return self._epoch if self.serving else None

    def store(self, ticket: int | None, key: CacheKey, value: Any, weight: int) -> None:
        """Keep ``value`` (what the database answered after ``ticket`` was taken) unless something was invalidated
        since, the cache stopped serving, or it weighs too much."""
        if ticket is None or ticket != self._epoch or not self.serving or weight > MAX_ENTRY_BYTES:
            return
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > self._size:
            entries.popitem(last=False)

    async def read_through(self, key: CacheKey, load: Callable[[], Awaitable[tuple[Any, int]]]) -> Any:
        """The answer for ``key`` (possibly ``ABSENT``): from here, else ``load()``'s (answer, weight), taken under a
        ticket so that a write landing while it reads keeps the old answer out."""
        found = self.lookup(key)
        if found is MISS:
            ticket = self.ticket()
            found, weight = await load()
            self.store(ticket, key, found, weight)
        return found

    def invalidate(self, keys: list[CacheKey]) -> None:
        """These rows changed (or may have): forget them, and spoil every read in flight."""
        self._epoch += 1
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything (and spoil every read in flight)."""
        self._epoch += 1
        self._entries.clear()

    def set_live(self, live: bool) -> None:
        """Whether invalidations arrive: emptied either way, as nothing read before the change can be trusted."""
        self.clear()
        self._live = live


NO_CACHE: Final = ReadCache(0)
"""The services' default: never serves, never stores."""
