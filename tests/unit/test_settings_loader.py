"""The one settings loader (tocsin_wire.settings): variables converted in one place, flags win, errors name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytest
from tocsin_wire.settings import Env, SettingsError, load, variables, yes_or_no


@dataclass(frozen=True)
class Example:
    port: Annotated[int, Env("TOCSIN_X_PORT")] = 8080
    ratio: Annotated[float, Env("TOCSIN_X_RATIO")] = 0.5
    on: Annotated[bool, Env("TOCSIN_X_ON", parse=yes_or_no)] = False
    names: Annotated[tuple[str, ...], Env("TOCSIN_X_NAMES", parse=lambda raw: raw.split(","))] = ()
    optional: Annotated[int | None, Env("TOCSIN_X_OPTIONAL")] = None
    undeclared: str = "kept"


def test__variables_convert_to_the_field_types() -> None:
    env = {"TOCSIN_X_PORT": "9000", "TOCSIN_X_RATIO": "1.5", "TOCSIN_X_ON": "Yes", "TOCSIN_X_NAMES": "a,b"}
    assert load(Example, env) == Example(port=9000, ratio=1.5, on=True, names=("a", "b"))


def test__a_flag_wins_over_its_variable_and_none_leaves_it() -> None:
    env = {"TOCSIN_X_PORT": "9000"}
    assert load(Example, env, port=7000).port == 7000
    assert load(Example, env, port=None).port == 9000
    assert load(Example, {}, port=None).port == 8080


def test__an_empty_variable_counts_as_unset() -> None:
    assert load(Example, {"TOCSIN_X_PORT": "", "TOCSIN_X_OPTIONAL": ""}) == Example()


@pytest.mark.parametrize(
    ("variable", "raw", "kind"),
    [("TOCSIN_X_PORT", "eighty", "int"), ("TOCSIN_X_RATIO", "half", "float"), ("TOCSIN_X_ON", "maybe", "bool")],
)
def test__a_value_that_does_not_convert__names_its_variable(variable: str, raw: str, kind: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(Example, {variable: raw})
    assert str(info.value).startswith(f"{variable}={raw!r} is not a valid {kind}")


def test__an_unknown_override_is_a_bug_not_ignored() -> None:
    with pytest.raises(TypeError, match="no setting colour"):
        load(Example, {}, colour="red")


def test__variables_lists_the_declared_ones() -> None:
    assert variables(Example) == {
        "port": "TOCSIN_X_PORT",
        "ratio": "TOCSIN_X_RATIO",
        "on": "TOCSIN_X_ON",
        "names": "TOCSIN_X_NAMES",
        "optional": "TOCSIN_X_OPTIONAL",
    }
