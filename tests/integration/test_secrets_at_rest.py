"""Secrets at rest (issue 9, item 6): with keys configured, connection passwords and extras and variable values are
stored encrypted with the trigger kwargs' MultiFernet keys; the runtime reads return them in clear, admin answers
never carry a password; migration 0003 encrypts rows written before; ``tocsin key rotate`` re-encrypts everything
with a new first key so the old one can go; without keys nothing changes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from tocsin_server.app import create_app
from tocsin_server.config import Settings
from tocsin_server.db import migrate
from tocsin_server.db.cipher import PREFIX, KwargsCipher
from tocsin_server.web.versioning import VERSIONS

from tests.integration.test_runtime_api import make_task_instance

Client = TestClient[Litestar]
Auth = Callable[..., dict[str, str]]
PASSWORD = "hunter2-at-rest-7f3a"
EXTRA = '{"sslkey": "extra-secret-91c2"}'
VALUE = "variable-secret-5be8"
KWARGS_SECRET = "kwargs-secret-c0de"
CONNECTION = {"conn_type": "postgres", "host": "db.internal", "login": "etl", "password": PASSWORD, "extra": EXTRA}
TI = "ti:00000000-0000-4000-8000-000000000001"
MIGRATION = "0003"


def _sql(url: str, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), params or {})
                return [tuple(row) for row in result.all()] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _stored(url: str) -> dict[str, str | None]:
    (password, extra), *_ = _sql(url, "SELECT password, extra FROM connection WHERE conn_id = 'warehouse'")
    ((value,),) = _sql(url, "SELECT value FROM variable WHERE key = 'token'")
    kwargs = [row[0] for row in _sql(url, "SELECT kwargs FROM trigger")]
    return {"password": password, "extra": extra, "value": value, **{f"kwargs{i}": k for i, k in enumerate(kwargs)}}


@contextmanager
def _client(settings: Settings, keys: tuple[str, ...], auth: Auth) -> Iterator[Client]:
    app = create_app(replace(settings, trigger_kwargs_keys=keys), periodic_duties=False)
    with TestClient(app) as client:
        client.headers.update(auth("admin"))
        yield client


def _write_secrets(client: Client, auth: Auth) -> None:
    assert client.put("/api/v1/connections/warehouse", json=CONNECTION).status_code == 200
    assert client.put("/execution/variables/token", json={"value": VALUE}, headers=auth("worker")).status_code == 200
    ti = make_task_instance(client)
    path = f"/execution/task-instances/{ti['id']}/state"
    headers = auth("admin", "worker")
    assert client.patch(path, json={"state": "running"}, headers=headers).status_code == 200
    deferred = {"state": "deferred", "classpath": "a.B", "trigger_kwargs": {"s": KWARGS_SECRET}, "next_method": "go"}
    assert client.patch(path, json=deferred, headers=headers).status_code == 200


def _assert_reads_in_clear(client: Client, auth: Auth) -> None:
    """The runtime reads (worker and task-instance tokens) and the workload return every secret in clear."""
    for headers in (auth("worker"), auth(TI)):
        for version in VERSIONS:
            versioned = {**headers, "Tocsin-API-Version": version}
            got = client.get("/execution/connections/warehouse", headers=versioned)
            assert got.status_code == 200, got.text
            assert (got.json()["password"], got.json()["extra"]) == (PASSWORD, EXTRA)
            variable = client.get("/execution/variables/token", headers=versioned)
            assert variable.status_code == 200, variable.text
            assert variable.json()["value"] == VALUE
    job = client.post("/execution/jobs", json={"hostname": "h", "pid": 1, "capacity": 10}, headers=auth("triggerer"))
    job_headers = {"Authorization": f"Bearer {job.json()['token']}"}
    held = client.post("/execution/triggers/load", json={}, headers=job_headers).json()["trigger_ids"]
    workloads = client.post("/execution/triggers/workloads", json={"trigger_ids": held}, headers=job_headers)
    assert [w["kwargs"] for w in workloads.json()["workloads"]] == [{"s": KWARGS_SECRET}]


def _assert_admin_answers_in_clear_without_password(client: Client) -> None:
    for version in VERSIONS:
        listed = client.get("/api/v1/connections", headers={"Tocsin-API-Version": version})
        assert PASSWORD not in listed.text
        assert [c["extra"] for c in listed.json()["connections"]] == [EXTRA]
        assert PREFIX not in listed.text
    variables = client.get("/api/v1/variables")
    assert VALUE in [v["value"] for v in variables.json()["variables"]]
    assert PREFIX not in variables.text


def _assert_all_encrypted(stored: dict[str, str | None]) -> None:
    for name, value in stored.items():
        assert value is not None and value.startswith(PREFIX), name
        for secret in (PASSWORD, "extra-secret-91c2", VALUE, KWARGS_SECRET):
            assert secret not in value, name


def test__with_keys__the_rows_hold_no_plaintext_and_every_reader_gets_what_it_may(
    settings: Settings, auth: Auth
) -> None:
    key = Fernet.generate_key().decode()
    with _client(settings, (key,), auth) as client:
        _write_secrets(client, auth)
        put = client.put("/api/v1/connections/warehouse", json=CONNECTION)
        assert PASSWORD not in put.text and put.json()["extra"] == EXTRA
        _assert_all_encrypted(_stored(settings.database_url))
        _assert_admin_answers_in_clear_without_password(client)
        _assert_reads_in_clear(client, auth)


def test__without_keys__nothing_changes(settings: Settings, auth: Auth) -> None:
    with _client(settings, (), auth) as client:
        _write_secrets(client, auth)
        stored = _stored(settings.database_url)
        assert (stored["password"], stored["extra"], stored["value"]) == (PASSWORD, EXTRA, VALUE)
        _assert_reads_in_clear(client, auth)


def test__plain_rows_from_before_the_keys_still_read_beside_encrypted_ones(settings: Settings, auth: Auth) -> None:
    key = Fernet.generate_key().decode()
    with _client(settings, (), auth) as client:
        _write_secrets(client, auth)  # plain, before the rollout
    with _client(settings, (key,), auth) as client:
        put = client.put("/execution/variables/other", json={"value": "sealed"}, headers=auth("worker"))
        assert put.status_code == 200
        ((other,),) = _sql(settings.database_url, "SELECT value FROM variable WHERE key = 'other'")
        assert other.startswith(PREFIX)
        _assert_reads_in_clear(client, auth)
        assert client.get("/execution/variables/other", headers=auth("worker")).json()["value"] == "sealed"


def _before_migration() -> str:
    revision = ScriptDirectory.from_config(migrate.alembic_config("")).get_revision(MIGRATION)
    assert revision is not None and isinstance(revision.down_revision, str)
    return revision.down_revision


@pytest.fixture
def at_previous_revision(clean_database: str) -> Iterator[str]:
    migrate.downgrade(clean_database, _before_migration())
    yield clean_database
    migrate.upgrade(clean_database)  # the session's database stays at head for the other tests


def test__the_migration_encrypts_existing_plain_rows(
    at_previous_revision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = at_previous_revision
    _sql(
        url,
        "INSERT INTO connection (conn_id, conn_type, password, extra) VALUES ('warehouse', 'pg', :p, :e)",
        {
            "p": PASSWORD,
            "e": EXTRA,
        },
    )
    _sql(url, "INSERT INTO variable (key, value) VALUES ('token', :v)", {"v": VALUE})
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("TOCSIN_TRIGGER_KWARGS_KEYS", key)  # read by the migration the way the server reads it
    migrate.upgrade(url)
    stored = _stored(url)
    _assert_all_encrypted(stored)
    cipher = KwargsCipher((key,))
    assert [cipher.open_optional(stored[name]) for name in ("password", "extra", "value")] == [PASSWORD, EXTRA, VALUE]
    migrate.downgrade(url, _before_migration())  # the previous release reads them in clear again
    assert _stored(url) == {"password": PASSWORD, "extra": EXTRA, "value": VALUE}


def test__the_migration_without_keys_changes_nothing(
    at_previous_revision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = at_previous_revision
    _sql(
        url,
        "INSERT INTO connection (conn_id, conn_type, password, extra) VALUES ('warehouse', 'pg', :p, :e)",
        {
            "p": PASSWORD,
            "e": EXTRA,
        },
    )
    _sql(url, "INSERT INTO variable (key, value) VALUES ('token', :v)", {"v": VALUE})
    monkeypatch.delenv("TOCSIN_TRIGGER_KWARGS_KEYS", raising=False)
    migrate.upgrade(url)
    assert _stored(url) == {"password": PASSWORD, "extra": EXTRA, "value": VALUE}


def _tocsin(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tocsin_cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test__key_rotate__re_encrypts_everything_so_the_old_key_can_go(settings: Settings, auth: Auth) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with _client(settings, (old,), auth) as client:
        _write_secrets(client, auth)
    _sql(settings.database_url, "INSERT INTO variable (key, value) VALUES ('plain', 'from-before-the-keys')")
    before = _stored(settings.database_url)

    env = {"TOCSIN_DATABASE_URL": settings.database_url, "TOCSIN_TRIGGER_KWARGS_KEYS": f"{new},{old}"}
    rotated = _tocsin("key", "rotate", "--batch-size", "1", env=env)  # a batch per value: the paging is exercised
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 5 stored values" in rotated.stdout

    after = _stored(settings.database_url)
    _assert_all_encrypted(after)
    only_new = KwargsCipher((new,))
    for name, value in after.items():
        assert value != before[name]
        assert only_new.open_optional(value) == KwargsCipher((old,)).open_optional(before[name])
    ((plain,),) = _sql(settings.database_url, "SELECT value FROM variable WHERE key = 'plain'")
    assert only_new.open(plain) == "from-before-the-keys"

    with _client(settings, (new,), auth) as client:  # the old key removed: everything still reads
        _assert_reads_in_clear(client, auth)
        _assert_admin_answers_in_clear_without_password(client)


def test__key_rotate__without_keys_is_one_line_and_changes_nothing(settings: Settings, auth: Auth) -> None:
    with _client(settings, (), auth) as client:
        _write_secrets(client, auth)
    env = {"TOCSIN_DATABASE_URL": settings.database_url, "TOCSIN_TRIGGER_KWARGS_KEYS": ""}
    result = _tocsin("key", "rotate", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tocsin key rotate: configuration error: TOCSIN_TRIGGER_KWARGS_KEYS is not set: "
        "put the new key first and the old ones after it"
    ]
    stored = _stored(settings.database_url)
    assert (stored["password"], stored["extra"], stored["value"]) == (PASSWORD, EXTRA, VALUE)


def test__key_rotate__with_a_key_that_no_longer_opens_a_row_says_so(settings: Settings, auth: Auth) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with _client(settings, (old,), auth) as client:
        _write_secrets(client, auth)
    env = {"TOCSIN_DATABASE_URL": settings.database_url, "TOCSIN_TRIGGER_KWARGS_KEYS": new}
    result = _tocsin("key", "rotate", env=env)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no longer holds" in result.stderr


def test__a_secret_sealed_with_a_key_the_server_lost__is_a_problem_naming_the_setting_not_a_traceback(
    settings: Settings, auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    with _client(settings, (Fernet.generate_key().decode(),), auth) as client:
        _write_secrets(client, auth)
    with _client(settings, (Fernet.generate_key().decode(),), auth) as client:
        got = client.get("/execution/connections/warehouse", headers=auth("worker"))
    assert got.status_code == 500
    assert got.headers["content-type"].startswith("application/problem+json")
    assert "TOCSIN_TRIGGER_KWARGS_KEYS" in got.json()["detail"]
    assert PASSWORD not in got.text
    assert not any(record.exc_info for record in caplog.records)
