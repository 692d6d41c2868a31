"""The read cache's own rules (services/read_cache.py) and its notices' payloads (services/read_invalidation.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tocsin_server.config import ConfigError, Settings
from tocsin_server.services.read_cache import ABSENT, MAX_ENTRY_BYTES, MISS, ReadCache, variable_key, xcom_key
from tocsin_server.services.read_invalidation import EVERYTHING, PAYLOAD_BYTES, decode, encode, invalidate_from


def test__a_store_after_an_invalidation_since_its_ticket_is_dropped() -> None:
    cache = ReadCache(10, live=True)
    ticket = cache.ticket()
    cache.invalidate([variable_key("other")])  # any key: the read in flight may have seen the old row of any
    cache.store(ticket, variable_key("v"), "old", 3)
    assert cache.lookup(variable_key("v")) is MISS
    cache.store(cache.ticket(), variable_key("v"), "new", 3)
    assert cache.lookup(variable_key("v")) == "new"


def test__not_live_it_serves_and_stores_nothing_and_going_live_or_not_empties_it() -> None:
    cache = ReadCache(10)
    assert cache.ticket() is None
    cache.set_live(True)
    cache.store(cache.ticket(), variable_key("v"), ABSENT, 1)
    assert cache.lookup(variable_key("v")) is ABSENT
    ticket = cache.ticket()
    cache.set_live(False)
    assert (len(cache), cache.lookup(variable_key("v")), cache.ticket()) == (0, MISS, None)
    cache.set_live(True)
    cache.store(ticket, variable_key("v"), "read while down", 1)  # its ticket predates the outage
    assert cache.lookup(variable_key("v")) is MISS


def test__an_answer_heavier_than_the_cap_is_not_kept() -> None:
    cache = ReadCache(10, live=True)
    cache.store(cache.ticket(), variable_key("big"), "x", MAX_ENTRY_BYTES + 1)
    assert cache.lookup(variable_key("big")) is MISS


def test__payloads_stay_under_the_limit_and_name_every_key() -> None:
    keys = {xcom_key("d" * 200, f"run-{i}", "t" * 200, i, "return_value") for i in range(200)}
    payloads = encode(keys)
    assert len(payloads) > 1
    assert all(len(payload.encode()) <= PAYLOAD_BYTES for payload in payloads)
    decoded = [key for payload in payloads for key in decode(payload) or []]
    assert set(decoded) == keys
    assert len(decoded) == len(keys)


def test__a_key_too_long_for_one_notice_invalidates_everything() -> None:
    keys = {variable_key("é" * 4000)}  # 8000 bytes of UTF-8
    assert encode(keys) == [EVERYTHING]
    cache = ReadCache(10, live=True)
    cache.store(cache.ticket(), variable_key("v"), "kept?", 1)
    invalidate_from(EVERYTHING, cache)
    invalidate_from("not json", cache)
    assert len(cache) == 0


def test__a_negative_size_is_a_configuration_error_and_0_is_off() -> None:
    base = Settings(database_url="postgresql+asyncpg://localhost/x", jwt_secret="s" * 64)
    with pytest.raises(ConfigError, match="TOCSIN_READ_CACHE_SIZE"):
        replace(base, read_cache_size=-1).validate()
    assert replace(base, read_cache_size=0).validate().read_cache_size == 0
