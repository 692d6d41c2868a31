"""Trigger kwargs at rest: encrypted when keys are configured, readable again only through the workload."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.fernet import Fernet
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from tocsin_server.app import create_app
from tocsin_server.config import ConfigError, Settings, load_settings
from tocsin_server.db import models as m
from tocsin_server.db.cipher import KwargsCipher, KwargsCipherError

from tests.integration.test_runtime_api import make_task_instance

KWARGS = {
    "moment": {"__classname__": "datetime.datetime", "__data__": "2030-01-01T00:00:00+00:00"},
    "secret": "s3-plaintext-never-stored",
}


def _stored_kwargs(database_url: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return list((await connection.scalars(select(m.Trigger.kwargs))).all())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test__kwargs_are_encrypted_at_rest_and_served_decrypted_to_the_holder(
    settings: Settings, auth: Callable[..., dict[str, str]]
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = create_app(replace(settings, trigger_kwargs_keys=(new, old)), periodic_duties=False)
    with TestClient(app) as client:
        client.headers.update(auth("admin", "worker"))
        ti = make_task_instance(client)
        path = f"/execution/task-instances/{ti['id']}/state"
        client.patch(path, json={"state": "running"})
        deferred = {"state": "deferred", "classpath": "a.B", "trigger_kwargs": KWARGS, "next_method": "go"}
        assert client.patch(path, json=deferred).status_code == 200

        (stored,) = _stored_kwargs(settings.database_url)
        assert stored.startswith("fernet:")
        assert (
            "s3-plaintext-never-stored" not in stored and "moment" not in stored
        )  # too long to occur in base64 by chance

        registered = client.post(
            "/execution/jobs", json={"hostname": "h", "pid": 1, "capacity": 10}, headers=auth("triggerer")
        ).json()
        job = {"Authorization": f"Bearer {registered['token']}"}
        held = client.post("/execution/triggers/load", json={}, headers=job).json()["trigger_ids"]
        workloads = client.post("/execution/triggers/workloads", json={"trigger_ids": held}, headers=job).json()
        assert workloads["workloads"][0]["kwargs"] == KWARGS


def test__cipher_reads_plain_rows_rotates_keys_and_refuses_foreign_ones() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = KwargsCipher((old,)).seal('{"a": 1}')
    assert KwargsCipher((new, old)).open(sealed_with_old) == '{"a": 1}'  # rotation: old rows still read
    assert KwargsCipher((new,)).open('{"plain": true}') == '{"plain": true}'  # rows from before a key was set
    assert KwargsCipher().seal('{"a": 1}') == '{"a": 1}'
    with pytest.raises(KwargsCipherError, match="no longer holds"):
        KwargsCipher((new,)).open(sealed_with_old)
    with pytest.raises(KwargsCipherError, match="not set"):
        KwargsCipher().open(sealed_with_old)


def test__a_bad_key_is_a_clear_configuration_error() -> None:
    env = {"TOCSIN_JWT_SECRET": "x" * 40, "TOCSIN_TRIGGER_KWARGS_KEYS": "not-a-key"}
    with pytest.raises(ConfigError, match="TOCSIN_TRIGGER_KWARGS_KEYS: key 1 is not a Fernet key"):
        load_settings(env)
    key = Fernet.generate_key().decode()
    assert load_settings({**env, "TOCSIN_TRIGGER_KWARGS_KEYS": f" {key} , {key}"}).trigger_kwargs_keys == (key, key)
