"""serde: deserialize(serialize(x)) == x for nested values of every supported type."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tocsin_client import serde

ALLOWED = (f"{__name__}.*",)


@serde.register
@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: str
    at: datetime | None = None
    computed: int = dataclasses.field(default=0, init=False)


@serde.register
class Money(msgspec.Struct, frozen=True, kw_only=True):
    amount: Decimal
    currency: str
    tags: tuple[str, ...] = ()


class Outer:
    @serde.register
    @dataclasses.dataclass(frozen=True)
    class Inner:
        value: Any


class Pair(NamedTuple):
    left: int
    right: int


timezones = st.one_of(
    st.none(),
    st.just(UTC),
    st.timezones(),
    st.integers(-23 * 60, 23 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))),
)
hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.uuids(),
    st.decimals(allow_nan=False),
    st.dates(),
    st.datetimes(timezones=timezones, allow_imaginary=False),
    st.timedeltas(),
)
leaves = st.one_of(
    hashable_leaves,
    st.builds(Point, x=st.integers(), label=st.text(), at=st.none() | st.datetimes(timezones=st.just(UTC))),
    st.builds(Money, amount=st.decimals(allow_nan=False), currency=st.text(max_size=3), tags=st.tuples(st.text())),
)
keys = st.text().filter(lambda key: key != serde.CLASSNAME)


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.sets(hashable_leaves, max_size=4),
        st.frozensets(hashable_leaves, max_size=4),
        st.builds(Outer.Inner, value=children),
    )


values = st.recursive(leaves, containers, max_leaves=20)


@settings(database=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test__roundtrip__any_supported_value(value: Any) -> None:
    encoded = serde.serialize(value)
    assert serde.deserialize(encoded, allowed=ALLOWED) == value


@settings(database=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test__roundtrip__through_json_bytes(value: Any) -> None:
    assert serde.loads(serde.dumps(value), allowed=ALLOWED) == value


@settings(database=None)
@given(st.datetimes(timezones=timezones, allow_imaginary=False))
def test__roundtrip__datetime_keeps_its_tzinfo(value: datetime) -> None:
    decoded = serde.deserialize(serde.serialize(value))
    assert decoded == value
    assert decoded.utcoffset() == value.utcoffset()
    assert str(decoded.tzinfo) == str(value.tzinfo) or decoded.tzinfo == value.tzinfo


@settings(database=None)
@given(st.timedeltas())
def test__roundtrip__timedelta_is_exact(value: timedelta) -> None:
    assert serde.deserialize(serde.serialize(value)) == value


def test__serialize__timedelta_is_seconds_when_exact() -> None:
    assert serde.serialize(timedelta(minutes=1)) == {"__classname__": "datetime.timedelta", "__data__": 60.0}


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test__roundtrip__infinite_floats(value: float) -> None:
    assert serde.loads(serde.dumps(value)) == value


def test__roundtrip__nan() -> None:
    assert math.isnan(serde.loads(serde.dumps(math.nan)))


def test__roundtrip__int_beyond_64_bits() -> None:
    assert serde.loads(serde.dumps([2**64, -(2**70)])) == [2**64, -(2**70)]


def test__serialize__plain_json_passes_through() -> None:
    value = {"a": [1, 2.5, "x", True, None, {"b": []}]}
    assert serde.serialize(value) == value
    assert serde.deserialize(value) == value


def test__serialize__envelopes_name_the_builtin_types() -> None:
    encoded = serde.serialize(
        [datetime(2026, 11, 28, 10, tzinfo=UTC), date(2026, 11, 28), UUID(int=1), Decimal("1.10"), b"\x00", (1,)]
    )
    assert [item["__classname__"] for item in encoded] == [
        "datetime.datetime",
        "datetime.date",
        "uuid.UUID",
        "decimal.Decimal",
        "builtins.bytes",
        "builtins.tuple",
    ]
    assert encoded[0]["__data__"] == "2026-11-28T10:00:00+00:00"


def test__serialize__registered_classes_travel_as_their_fields() -> None:
    encoded = serde.serialize(Money(amount=Decimal(3), currency="EUR"))
    assert encoded == {
        "__classname__": f"{__name__}.Money",
        "__data__": {
            "amount": {"__classname__": "decimal.Decimal", "__data__": "3"},
            "currency": "EUR",
            "tags": {"__classname__": "builtins.tuple", "__data__": []},
        },
    }


def test__serialize__subclasses_travel_as_their_builtin_base() -> None:
    assert serde.deserialize(serde.serialize(Pair(1, 2))) == (1, 2)


def test__serialize__nested_class_uses_its_qualname() -> None:
    encoded = serde.serialize(Outer.Inner(value=1))
    assert encoded["__classname__"] == f"{__name__}.Outer.Inner"
    assert serde.deserialize(encoded, allowed=ALLOWED) == Outer.Inner(value=1)


def test__serialize__reserved_key_in_a_user_dict__is_refused() -> None:
    with pytest.raises(serde.SerializationError, match="reserved key"):
        serde.serialize({"nested": {"__classname__": "x", "__data__": 1}})


def test__serialize__non_str_dict_key__is_refused() -> None:
    with pytest.raises(serde.SerializationError, match="keys must be str"):
        serde.serialize({1: "x"})


def test__serialize__unregistered_class__is_refused() -> None:
    @dataclasses.dataclass
    class Unregistered:
        x: int

    with pytest.raises(serde.SerializationError, match="register"):
        serde.serialize(Unregistered(1))
    with pytest.raises(serde.SerializationError):
        serde.serialize(object())


def test__register__refuses_other_classes_and_local_classes() -> None:
    with pytest.raises(TypeError, match="dataclasses and msgspec Structs"):
        serde.register(int)

    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(TypeError, match="inside a function"):
        serde.register(Local)


def test__register__works_as_a_plain_call() -> None:
    assert serde.register(Point) is Point
    assert serde.classname(Point) == f"{__name__}.Point"


@pytest.mark.parametrize(
    "document",
    [
        {"__classname__": "datetime.datetime", "__data__": "not a date"},
        {"__classname__": "datetime.datetime", "__data__": "2026-01-01T00:00:00+01:00[No/Such_Zone]"},
        {"__classname__": "datetime.timedelta", "__data__": [1, 2]},
        {"__classname__": "uuid.UUID", "__data__": 5},
        {"__classname__": "decimal.Decimal", "__data__": "1.2.3"},
        {"__classname__": "builtins.bytes", "__data__": "not base64!"},
        {"__classname__": "builtins.tuple", "__data__": "abc"},
        {"__classname__": "builtins.set", "__data__": [[1]]},
        {"__classname__": "datetime.date"},
        {"__classname__": "datetime.date", "__data__": "2026-01-01", "extra": 1},
        {"__classname__": 5, "__data__": 1},
    ],
)
def test__deserialize__malformed_envelope__raises_deserialization_error(document: dict[str, Any]) -> None:
    with pytest.raises(serde.DeserializationError):
        serde.deserialize(document)


def test__deserialize__class_with_wrong_fields__raises_deserialization_error() -> None:
    document = {"__classname__": f"{__name__}.Point", "__data__": {"nope": 1}}
    with pytest.raises(serde.DeserializationError, match="cannot build"):
        serde.deserialize(document, allowed=ALLOWED)


def test__loads__not_json__raises_deserialization_error() -> None:
    with pytest.raises(serde.DeserializationError, match="not JSON"):
        serde.loads(b"{")
