"""TriggererConfig: flags over environment, validation naming every bad setting."""

from __future__ import annotations

import pytest
from tocsin_client.triggerer import ConfigError, TriggererConfig


def test__from_env__reads_tocsin_variables_and_flags_win() -> None:
    env = {
        "TOCSIN_API_URL": "http://api:8080",
        "TOCSIN_TOKEN": "t",
        "TOCSIN_TRIGGERER_CAPACITY": "50",
        "TOCSIN_TRIGGERER_RUNNERS": "3",
        "TOCSIN_ALLOWED_DESERIALIZATION_CLASSES": "my_pkg.*, other.Thing",
    }
    config = TriggererConfig.from_env(env, capacity=70, runners=None)
    assert (config.api_url, config.token, config.capacity, config.runners) == ("http://api:8080", "t", 70, 3)
    assert config.allowed == ("tocsin_client.*", "my_pkg.*", "other.Thing")


def test__validate__names_every_bad_setting() -> None:
    with pytest.raises(ConfigError) as info:
        TriggererConfig.from_env({}, capacity=0, runners=0)
    text = str(info.value)
    for part in ("api_url", "token", "capacity 0", "runners 0"):
        assert part in text


def test__from_env__with_a_non_number__says_which_variable() -> None:
    with pytest.raises(ConfigError, match="TOCSIN_TRIGGERER_CAPACITY='many'"):
        TriggererConfig.from_env(
            {"TOCSIN_API_URL": "http://x", "TOCSIN_TOKEN": "t", "TOCSIN_TRIGGERER_CAPACITY": "many"}
        )


def test__hostname__fits_the_registration_pattern() -> None:
    import re

    config = TriggererConfig(api_url="http://x", token="t")
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-]*", config.hostname)


def test__exit_on_lost_lease__is_off_by_default_and_read_from_its_variable() -> None:
    base = {"TOCSIN_API_URL": "http://x", "TOCSIN_TOKEN": "t"}
    assert TriggererConfig.from_env(base).exit_on_lost_lease is False
    assert TriggererConfig.from_env({**base, "TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE": "true"}).exit_on_lost_lease
    assert not TriggererConfig.from_env({**base, "TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE": "0"}).exit_on_lost_lease
    with pytest.raises(ConfigError, match="TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE='maybe'"):
        TriggererConfig.from_env({**base, "TOCSIN_TRIGGERER_EXIT_ON_LOST_LEASE": "maybe"})
