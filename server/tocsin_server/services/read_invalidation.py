"""The news of every write of a cached row (services/read_cache.py), sent in the writing transaction.

A write names the keys it changes with ``touch(session, key)``. Just before COMMIT, on PostgreSQL, they go out as
``pg_notify`` on ``CHANNEL`` in that same transaction: PostgreSQL delivers them to every listening server process
at COMMIT, and never if the transaction fails. After the transaction ends the writing process forgets them itself,
before the response is sent, so its own next read is the new value. That is done after a rollback too: an
invalidation too many costs one read, and a COMMIT whose answer was lost may still have committed.

The keys are explicit, not guessed from the SQL: every write path of ``variable``, ``connection`` and ``xcom``
calls ``touch`` (variables and connections put/delete, XCom pushes and terminal events' XComs); nothing else
writes them (retention and the periodic duties delete none of these rows, and no task-instance change deletes an
XCom: an XCom is cached whatever its task's state, since each of its writes names it). Key rotation
(``tocsin key rotate``) rewrites sealed values without changing what they decrypt to, so it needs none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec
from sqlalchemy import Text, bindparam, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from tocsin_server.services.read_cache import CacheKey, ReadCache

__all__ = ["CHANNEL", "EVERYTHING", "decode", "encode", "invalidate_from", "touch", "track"]

CHANNEL: Final = "tocsin_read_cache"
"""The PostgreSQL NOTIFY channel of cached rows that changed; each payload is a JSON array of keys."""
EVERYTHING: Final = "*"
"""A payload that invalidates every entry (keys too long for one notice)."""
PAYLOAD_BYTES: Final = 7_000
"""A notice's payload stays under PostgreSQL's 8000-byte limit."""

_TOUCHED: Final = "tocsin.read_cache_touched"
_SENT: Final = "tocsin.read_cache_sent"
_TRACKED: Final = "_tocsin_tracks_read_cache"
_ON_END: Final = "_tocsin_on_read_cache_end"
_NOTIFY: Final = text("SELECT pg_notify(:channel, payload) FROM unnest(:payloads) AS payload").bindparams(
    bindparam("payloads", type_=ARRAY(Text))
)
_KEYS: Final = msgspec.json.Decoder(list[list[str | int]])


def touch(session: AsyncSession, *keys: CacheKey) -> None:
    """This transaction writes the rows of ``keys``: every server process forgets them once it ends."""
    touched: set[CacheKey] = session.sync_session.info.setdefault(_TOUCHED, set())
    touched.update(keys)


def encode(keys: set[CacheKey]) -> list[str]:
    """The payloads naming ``keys``, each under ``PAYLOAD_BYTES`` (``EVERYTHING`` for a key that is not)."""
    payloads: list[str] = []
    chunk: list[bytes] = []
    size = 0
    for key in sorted(keys, key=repr):
        encoded = msgspec.json.encode(key)
        if len(encoded) + 2 > PAYLOAD_BYTES:
            return [EVERYTHING]
        if size + len(encoded) + 2 > PAYLOAD_BYTES:
            payloads.append(f"[{b','.join(chunk).decode()}]")
            chunk, size = [], 0
        chunk.append(encoded)
        size += len(encoded) + 1
    if chunk:
        payloads.append(f"[{b','.join(chunk).decode()}]")
    return payloads


def decode(payload: str) -> list[CacheKey] | None:
    """The keys a payload names; ``None`` for "everything" (or a payload this version cannot read)."""
    if payload == EVERYTHING:
        return None
    try:
        return [tuple(key) for key in _KEYS.decode(payload)]
    except msgspec.DecodeError:
        return None


def _send(session: Session) -> None:
    """Just before COMMIT (not a savepoint's release): the notices go in this transaction."""
    if session.in_nested_transaction():
        return
    session.info[_SENT] = True
    touched: set[CacheKey] | None = session.info.get(_TOUCHED)
    if touched and session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": CHANNEL, "payloads": encode(touched)})


def _committed(session: Session) -> None:
    """After COMMIT (a savepoint's release fires this too: it is the outer transaction's ``_send`` that counts)."""
    if session.info.pop(_SENT, False):
        _ended(session)


def _ended(session: Session) -> None:
    touched: set[CacheKey] | None = session.info.pop(_TOUCHED, None)
    if touched:
        callback: Callable[[list[CacheKey]], None] | None = getattr(type(session), _ON_END, None)
        if callback is not None:
            callback(list(touched))


def _rolled_back(session: Session, previous: SessionTransaction) -> None:
    """A savepoint's rollback keeps the keys (the outer transaction may still write them); the outer one's ends."""
    if not previous.nested and previous.parent is None:
        session.info.pop(_SENT, None)
        _ended(session)


def track(sessionmaker: async_sessionmaker[AsyncSession], on_end: Callable[[list[CacheKey]], None]) -> None:
    """Send the keys written through this sessionmaker's sessions; ``on_end`` gets them after each transaction."""
    session_class: type[Session] = sessionmaker.kw["sync_session_class"]
    setattr(session_class, _ON_END, on_end)
    if session_class.__dict__.get(_TRACKED):  # a mark on the class: see services/changes.py's track
        return
    setattr(session_class, _TRACKED, True)
    event.listen(session_class, "before_commit", _send)
    event.listen(session_class, "after_commit", _committed)
    event.listen(session_class, "after_soft_rollback", _rolled_back)


def invalidate_from(payload: str, cache: ReadCache) -> None:
    """What the LISTEN connection passes on: forget the payload's keys (all of them for one not understood)."""
    keys = decode(payload)
    if keys is None:
        cache.clear()
    else:
        cache.invalidate(keys)
