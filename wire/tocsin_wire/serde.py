"""Encode Python values to JSON-compatible data with typed envelopes, and decode them behind an allowlist.

A value JSON cannot carry travels as ``{"__classname__": "datetime.timedelta", "__data__": 60.0}``.
Builtin types (datetime, date, timedelta, UUID, Decimal, bytes, set, frozenset, tuple, and ints or floats
JSON cannot hold) always decode. A dataclass or msgspec Struct is encoded once its class is registered with
``register``, and decoded only when its dotted path matches one of the ``allowed`` glob patterns: the pattern is
checked before anything is imported, so a payload can never make the decoder import a module it was not told to.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any, Final, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

__all__ = [
    "CLASSNAME",
    "DATA",
    "DeserializationError",
    "DisallowedClassError",
    "SerdeError",
    "SerializationError",
    "classname",
    "deserialize",
    "dumps",
    "loads",
    "parse_allowed",
    "register",
    "serialize",
]

CLASSNAME: Final = "__classname__"
DATA: Final = "__data__"
_INT64: Final = range(-(2**63), 2**63)  # what every JSON library on the way holds exactly
_DOTTED: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_ZONE: Final = re.compile(r"(?P<iso>.+)\[(?P<zone>[^\]]+)\]")  # RFC 9557 suffix, e.g. "...+01:00[Europe/Paris]"

_T = TypeVar("_T", bound=type)
_registry: dict[type, str] = {}


class SerdeError(ValueError):
    """A value could not be encoded or decoded."""


class SerializationError(SerdeError, TypeError):
    """The value has a type serde cannot encode (or a dict breaks the envelope rules)."""


class DeserializationError(SerdeError):
    """The data is not a valid serde document."""


class DisallowedClassError(DeserializationError):
    """The data names a class that no allowed pattern matches; nothing was imported."""


def classname(cls: type) -> str:
    """The dotted path that names ``cls`` in an envelope."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: _T) -> _T:
    """Let instances of a dataclass or msgspec Struct be encoded; usable as a class decorator."""
    if not (dataclasses.is_dataclass(cls) or issubclass(cls, msgspec.Struct)):
        msg = f"serde can only register dataclasses and msgspec Structs, not {cls!r}"
        raise TypeError(msg)
    if "<locals>" in cls.__qualname__:
        msg = f"{cls.__qualname__} is defined inside a function, so it cannot be imported when decoding"
        raise TypeError(msg)
    _registry[cls] = classname(cls)
    return cls


# -- encoding ------------------------------------------------------------------------------------------------------


def serialize(value: Any) -> Any:
    """``value`` as JSON-compatible data (dict, list, str, int, float, bool, None) with typed envelopes."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return _serialize_number(value)
    if isinstance(value, dict):
        return _serialize_dict(value)
    if isinstance(value, list):
        return [serialize(item) for item in value]
    return _serialize_object(value)


def _serialize_number(value: float) -> Any:
    if isinstance(value, int):
        return value if value in _INT64 else _envelope("builtins.int", str(value))
    # nan and the infinities are not JSON (msgspec would write null); inf - inf and nan - nan are nan.
    return value if value - value == 0 else _envelope("builtins.float", repr(value))


def _serialize_object(value: Any) -> dict[str, Any]:
    if registered_name := _registry.get(type(value)):
        return _envelope(registered_name, {field: serialize(item) for field, item in _fields(value).items()})
    # The MRO walk lets subclasses (a namedtuple, a datetime subclass) travel as their builtin base.
    for base in type(value).__mro__:
        if encoder := _ENCODERS.get(base):
            builtin_name, encode = encoder
            return _envelope(builtin_name, encode(value))
    msg = f"cannot serialize {type(value).__qualname__}; register its class with tocsin_client.serde.register"
    raise SerializationError(msg)


def _serialize_dict(value: dict[Any, Any]) -> dict[str, Any]:
    for key in value:
        if not isinstance(key, str):
            msg = f"dict keys must be str, not {type(key).__qualname__}"
            raise SerializationError(msg)
    if CLASSNAME in value:
        msg = f"a dict may not use the reserved key {CLASSNAME!r}"
        raise SerializationError(msg)
    return {key: serialize(item) for key, item in value.items()}


def _envelope(name: str, data: Any) -> dict[str, Any]:
    return {CLASSNAME: name, DATA: data}


def _fields(value: Any) -> dict[str, Any]:
    if isinstance(value, msgspec.Struct):
        return {field: getattr(value, field) for field in value.__struct_fields__}
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value) if field.init}


def _encode_datetime(value: datetime) -> str:
    # A zone name says more than its current offset (daylight saving), so keep it, RFC 9557 style.
    if isinstance(value.tzinfo, ZoneInfo):
        return f"{value.isoformat()}[{value.tzinfo.key}]"
    return value.isoformat()


def _encode_timedelta(value: timedelta) -> float | list[int]:
    seconds = value.total_seconds()
    # Seconds read best, but a float holds only about 285 years to the microsecond.
    if timedelta(seconds=seconds) == value:
        return seconds
    return [value.days, value.seconds, value.microseconds]


def _encode_items(value: Iterable[Any]) -> list[Any]:
    return [serialize(item) for item in value]


_ENCODERS: Final[dict[type, tuple[str, Callable[[Any], Any]]]] = {
    datetime: ("datetime.datetime", _encode_datetime),
    date: ("datetime.date", date.isoformat),
    timedelta: ("datetime.timedelta", _encode_timedelta),
    UUID: ("uuid.UUID", str),
    Decimal: ("decimal.Decimal", str),
    bytes: ("builtins.bytes", lambda value: base64.b64encode(value).decode("ascii")),
    tuple: ("builtins.tuple", _encode_items),
    set: ("builtins.set", _encode_items),
    frozenset: ("builtins.frozenset", _encode_items),
}


# -- decoding ------------------------------------------------------------------------------------------------------


def parse_allowed(raw: str) -> tuple[str, ...]:
    """The allowlist patterns of ``TOCSIN_ALLOWED_DESERIALIZATION_CLASSES``: separated by commas, whitespace or both.

    The one parser of the variable: the API server and the triggerer both read it, and must agree on what it says.
    """
    return tuple(part for part in re.split(r"[\s,]+", raw) if part)


def deserialize(data: Any, allowed: Iterable[str] = ()) -> Any:
    """The Python value that ``serialize`` encoded as ``data``.

    Args:
        data: JSON-compatible data.
        allowed: fnmatch glob patterns (``"my_pkg.events.*"``) of the dotted class paths that may be imported.
            Builtin types are always allowed.

    Raises:
        DisallowedClassError: ``data`` names a class no pattern matches.
        DeserializationError: ``data`` is not a valid serde document.
    """
    return _Decoder(tuple(allowed)).decode(data)


class _Decoder:
    def __init__(self, allowed: tuple[str, ...]) -> None:
        self._allowed = allowed

    def decode(self, data: Any) -> Any:
        if isinstance(data, list):
            return [self.decode(item) for item in data]
        if not isinstance(data, dict):
            return data
        if CLASSNAME not in data:
            return {key: self.decode(item) for key, item in data.items()}
        if set(data) != {CLASSNAME, DATA} or not isinstance(data[CLASSNAME], str):
            msg = f"an envelope has exactly the keys {CLASSNAME!r} (a str) and {DATA!r}, got {sorted(data)}"
            raise DeserializationError(msg)
        name, payload = data[CLASSNAME], data[DATA]
        if decoder := _DECODERS.get(name):
            try:
                return decoder(self, payload)
            except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
                msg = f"invalid {name} data {payload!r}: {exc}"
                raise DeserializationError(msg) from exc
        return self._decode_class(name, payload)

    def _decode_class(self, name: str, payload: Any) -> Any:
        # The allowlist is checked before anything else touches the name: a refused payload imports nothing.
        if not any(fnmatchcase(name, pattern) for pattern in self._allowed):
            msg = f"{name!r} is not in the allowed deserialization classes"
            raise DisallowedClassError(msg)
        if not _DOTTED.fullmatch(name):
            msg = f"{name!r} is not a dotted class path"
            raise DeserializationError(msg)
        cls = _import(name)
        if not isinstance(cls, type) or not (dataclasses.is_dataclass(cls) or issubclass(cls, msgspec.Struct)):
            msg = f"{name!r} is not a dataclass or msgspec Struct"
            raise DeserializationError(msg)
        if not isinstance(payload, dict):
            msg = f"the data of {name!r} must be an object of its fields"
            raise DeserializationError(msg)
        kwargs = {key: self.decode(item) for key, item in payload.items()}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            msg = f"cannot build {name!r} from its fields: {exc}"
            raise DeserializationError(msg) from exc

    def decode_items(self, payload: Any) -> list[Any]:
        if not isinstance(payload, list):
            msg = "expected a list"
            raise TypeError(msg)
        return [self.decode(item) for item in payload]


def _import(name: str) -> Any:
    """Import ``a.b.Outer.Inner``: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only "this prefix is not a module" means try a shorter one; a missing dependency is a real error.
            if exc.name and (module_name + ".").startswith(exc.name + "."):
                continue
            raise
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
        if obj is not None:
            return obj
    msg = f"cannot import {name!r}"
    raise DeserializationError(msg)


def _text(payload: Any) -> str:
    if not isinstance(payload, str):
        msg = f"expected a str, got {type(payload).__name__}"
        raise TypeError(msg)
    return payload


def _decode_datetime(_: _Decoder, payload: Any) -> datetime:
    if zoned := _ZONE.fullmatch(_text(payload)):
        return datetime.fromisoformat(zoned["iso"]).astimezone(ZoneInfo(zoned["zone"]))
    return datetime.fromisoformat(payload)


def _decode_timedelta(_: _Decoder, payload: Any) -> timedelta:
    if isinstance(payload, list) and len(payload) == 3 and all(type(part) is int for part in payload):
        days, seconds, microseconds = payload
        return timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if isinstance(payload, int | float) and not isinstance(payload, bool):
        return timedelta(seconds=payload)
    msg = "expected seconds or [days, seconds, microseconds]"
    raise TypeError(msg)


_DECODERS: Final[dict[str, Callable[[_Decoder, Any], Any]]] = {
    "datetime.datetime": _decode_datetime,
    "datetime.date": lambda _, payload: date.fromisoformat(_text(payload)),
    "datetime.timedelta": _decode_timedelta,
    "uuid.UUID": lambda _, payload: UUID(_text(payload)),
    "decimal.Decimal": lambda _, payload: Decimal(_text(payload)),
    "builtins.bytes": lambda _, payload: base64.b64decode(_text(payload), validate=True),
    "builtins.int": lambda _, payload: int(_text(payload)),
    "builtins.float": lambda _, payload: float(_text(payload)),
    "builtins.tuple": lambda decoder, payload: tuple(decoder.decode_items(payload)),
    "builtins.set": lambda decoder, payload: set(decoder.decode_items(payload)),
    "builtins.frozenset": lambda decoder, payload: frozenset(decoder.decode_items(payload)),
}


# -- bytes ---------------------------------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """``value`` serialized and encoded as JSON bytes."""
    return msgspec.json.encode(serialize(value))


def loads(data: bytes | str, allowed: Iterable[str] = ()) -> Any:
    """The value in JSON ``data``, decoded with ``deserialize``."""
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        msg = f"not JSON: {exc}"
        raise DeserializationError(msg) from exc
    return deserialize(document, allowed)
