"""The two column types the schema needs beyond SQLAlchemy's own, each keeping a stored form that already exists.

Databases created before these types replaced advanced-alchemy's ``GUID`` and ``DateTimeUTC`` hold UUIDs and
times in the forms those types wrote, so these write and read exactly the same (docs/architecture.md,
"Persistence"; tests/unit/test_column_types.py reads a database written by the old types):

- a UUID is PostgreSQL's native ``uuid``; on SQLite the 16 raw bytes in a ``BINARY(16)`` column (SQLAlchemy's
  own ``Uuid`` would store 32 hex characters there instead);
- a time is ``timestamp with time zone`` on PostgreSQL; on SQLite the naive UTC text ``DATETIME`` stores. It
  goes in only timezone-aware and comes out aware in UTC on both.

The released migrations import these, so their meaning (DDL and stored form) must never change.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy.types import BINARY, DateTime, TypeDecorator, Uuid

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect


class _Uuid16Bytes(TypeDecorator[uuid.UUID]):
    """A UUID as its 16 bytes in ``BINARY(16)``: how SQLite has always stored them here."""

    impl = BINARY(16)
    cache_ok = True

    @property
    def python_type(self) -> type[uuid.UUID]:
        return uuid.UUID

    def process_bind_param(self, value: uuid.UUID | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return value.bytes

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> uuid.UUID | None:
        if value is None:
            return None
        return uuid.UUID(bytes=value)


STORED_UUID: Final = _Uuid16Bytes().with_variant(Uuid(as_uuid=True), "postgresql")
"""A UUID column: SQLAlchemy's ``Uuid`` (native ``uuid``, no Python conversion) on PostgreSQL, 16 bytes on SQLite."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware time, stored as UTC and always read back aware in UTC.

    SQLite's ``DATETIME`` keeps no offset: SQLAlchemy's own ``DateTime(timezone=True)`` would drop an aware
    value's offset without converting it and read back naive. A naive value is refused, never guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "a time stored in the database must be timezone-aware"
            raise TypeError(msg)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)
