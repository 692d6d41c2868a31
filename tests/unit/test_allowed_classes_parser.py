"""``TOCSIN_ALLOWED_DESERIALIZATION_CLASSES`` means the same to the API server and to the triggerer: one parser."""

from __future__ import annotations

import pytest
from tocsin_client import serde
from tocsin_client.triggerer import TriggererConfig
from tocsin_server.config import load_settings

from tests.conftest import SECRET


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        ("my_pkg.*", ("my_pkg.*",)),
        ("my_pkg.*,other.Thing", ("my_pkg.*", "other.Thing")),
        ("my_pkg.*, other.Thing", ("my_pkg.*", "other.Thing")),
        ("my_pkg.* other.Thing", ("my_pkg.*", "other.Thing")),
        ("  my_pkg.*\n\tother.Thing ,, third.* ,", ("my_pkg.*", "other.Thing", "third.*")),
    ],
)
def test__parse_allowed__splits_on_commas_whitespace_or_both(raw: str, expected: tuple[str, ...]) -> None:
    assert serde.parse_allowed(raw) == expected


@pytest.mark.parametrize("raw", ["a.* b.Thing", "a.*,b.Thing", "a.*, b.Thing\nc.*"])
def test__server_and_triggerer__read_the_variable_alike(raw: str) -> None:
    env = {
        "TOCSIN_ALLOWED_DESERIALIZATION_CLASSES": raw,
        "TOCSIN_JWT_SECRET": SECRET,
        "TOCSIN_API_URL": "http://api:8080",
        "TOCSIN_TOKEN": "t",
    }
    server = load_settings(env).allowed_deserialization_classes
    triggerer = TriggererConfig.from_env(env).allowed_classes
    assert server == triggerer == serde.parse_allowed(raw)
    assert "a.*" in triggerer
