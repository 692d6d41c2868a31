"""serde: a class is imported only when the allowlist names it, and the check comes before any import."""

from __future__ import annotations

import dataclasses
import sys
from unittest import mock

import msgspec
import pytest
from tocsin_client import serde


@serde.register
@dataclasses.dataclass
class Allowed:
    value: int


def test__deserialize__os_system__is_refused_without_importing_anything() -> None:
    payload = {"__classname__": "os.system", "__data__": "echo pwned"}

    with mock.patch("importlib.import_module") as import_module, pytest.raises(serde.DisallowedClassError):
        serde.deserialize({"nested": [payload]}, allowed=("tocsin_client.*", f"{__name__}.*"))

    import_module.assert_not_called()


def test__deserialize__unknown_module__is_refused_before_it_could_be_imported() -> None:
    payload = {"__classname__": "evil_module_that_does_not_exist.Payload", "__data__": {}}

    with mock.patch("importlib.import_module") as import_module, pytest.raises(serde.DisallowedClassError):
        serde.loads(msgspec.json.encode([payload]), allowed=("tocsin_client.*",))

    import_module.assert_not_called()
    assert "evil_module_that_does_not_exist" not in sys.modules


def test__deserialize__without_patterns__refuses_even_a_registered_class() -> None:
    encoded = serde.serialize(Allowed(1))

    with pytest.raises(serde.DisallowedClassError):
        serde.deserialize(encoded)


def test__deserialize__matching_pattern__builds_the_class() -> None:
    encoded = serde.serialize(Allowed(1))

    assert serde.deserialize(encoded, allowed=[f"{__name__}.Allowed"]) == Allowed(1)
    assert serde.deserialize(encoded, allowed=["tests.unit.*"]) == Allowed(1)


def test__deserialize__patterns_are_case_sensitive() -> None:
    encoded = serde.serialize(Allowed(1))

    with pytest.raises(serde.DisallowedClassError):
        serde.deserialize(encoded, allowed=[f"{__name__}.allowed"])


def test__deserialize__builtins_need_no_pattern_and_import_nothing() -> None:
    encoded = serde.serialize({"at": __import__("datetime").timedelta(seconds=5), "ids": frozenset({1})})

    with mock.patch("importlib.import_module") as import_module:
        decoded = serde.deserialize(encoded)

    import_module.assert_not_called()
    assert decoded["ids"] == frozenset({1})


def test__deserialize__allowed_name_that_is_not_a_data_class__is_refused() -> None:
    payload = {"__classname__": "os.system", "__data__": {}}

    with pytest.raises(serde.DeserializationError, match="not a dataclass or msgspec Struct"):
        serde.deserialize(payload, allowed=["os.*"])


@pytest.mark.parametrize("name", ["os", "os.", ".os.path", "os..path", "os.path;rm"])
def test__deserialize__allowed_name_that_is_not_a_dotted_path__is_refused_before_import(name: str) -> None:
    with mock.patch("importlib.import_module") as import_module, pytest.raises(serde.DeserializationError):
        serde.deserialize({"__classname__": name, "__data__": {}}, allowed=["*"])

    import_module.assert_not_called()


def test__deserialize__allowed_but_missing_class__raises_deserialization_error() -> None:
    with pytest.raises(serde.DeserializationError, match="cannot import"):
        serde.deserialize({"__classname__": f"{__name__}.Missing", "__data__": {}}, allowed=["tests.*"])


def test__disallowed_class_error__is_a_deserialization_error() -> None:
    assert issubclass(serde.DisallowedClassError, serde.DeserializationError)
    assert issubclass(serde.DeserializationError, ValueError)
