"""One settings loader for the server and the triggerer: typed fields, each naming its ``TOCSIN_*`` variable.

A setting is a dataclass field annotated with the variable that sets it::

    @dataclass(frozen=True)
    class Settings:
        port: Annotated[int, Env("TOCSIN_PORT")] = 8080

``load(Settings, os.environ, port=flag_value)`` reads each declared variable once, converts its text to the
field's type with msgspec (the one conversion, so ``"8080"``, ``"8.5"`` and ``"true"`` mean the same for every
setting), lets a given override (a command-line flag) win, and leaves every other field at its default. A value
that does not convert is a ``SettingsError`` naming the variable. An empty variable counts as unset.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import msgspec

__all__ = ["Env", "SettingsError", "load", "variables", "yes_or_no"]

_T = TypeVar("_T")


class SettingsError(ValueError):
    """A variable holds a value its setting cannot take; the message names the variable."""


@dataclasses.dataclass(frozen=True, slots=True)
class Env:
    """The variable that sets a field (``Annotated[int, Env("TOCSIN_PORT")]``)."""

    name: str
    parse: Callable[[str], Any] | None = None
    """How the text reads when it is not a scalar (a list, say); msgspec converts the result."""


def _declared(cls: type[Any]) -> dict[str, tuple[Any, Env | None]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    declared = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        env = next((item for item in getattr(hint, "__metadata__", ()) if isinstance(item, Env)), None)
        declared[field.name] = (hint, env)
    return declared


_YES: Final = frozenset({"1", "true", "yes", "on"})
_NO: Final = frozenset({"0", "false", "no", "off"})


def yes_or_no(raw: str) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off, in any case."""
    value = raw.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    msg = f"use one of {', '.join(sorted(_YES | _NO))}"
    raise ValueError(msg)


def _kind(hint: Any) -> str:
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    return getattr(base, "__name__", str(base))


def variables(cls: type[Any]) -> dict[str, str]:
    """Field name → the variable that sets it, for every declared field of ``cls``."""
    return {name: env.name for name, (_, env) in _declared(cls).items() if env is not None}


def load(cls: type[_T], env: Mapping[str, str], /, **overrides: object) -> _T:
    """An instance of the dataclass ``cls`` from ``env``; an override that is not None wins over its variable."""
    values: dict[str, Any] = {}
    for name, (hint, declared) in _declared(cls).items():
        if (given := overrides.get(name)) is not None:
            values[name] = given
            continue
        if declared is None or not (raw := env.get(declared.name)):
            continue
        try:
            values[name] = msgspec.convert(declared.parse(raw) if declared.parse else raw, hint, strict=False)
        except (msgspec.ValidationError, ValueError) as exc:
            msg = f"{declared.name}={raw!r} is not a valid {_kind(hint)} ({exc})"
            raise SettingsError(msg) from None
    if unknown := set(overrides) - set(_declared(cls)):
        msg = f"{cls.__name__} has no setting {', '.join(sorted(unknown))}"
        raise TypeError(msg)
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:  # an override of the wrong type: a caller's bug, named
        raise SettingsError(str(exc)) from None
