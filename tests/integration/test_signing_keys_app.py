"""The app with a keyring: a token verifies by the key its ``kid`` names; an unknown or hostile kid is a 401
problem naming it, never a 500; a key retired while the app runs stops verifying its tokens (the keyring is the
database-independent part, so SQLite alone)."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from tocsin_server.config import Settings
from tocsin_server.signing_keys import Keyring, write_keyring

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
K1 = "1" * 40
K2 = "2" * 40


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    write_keyring(path, Keyring("k1", {"k1": K1, "k2": K2}))
    return path


@pytest.fixture
def settings(clean_database: str, keys: Path) -> Settings:
    return Settings(database_url=clean_database, jwt_keys_file=str(keys), jwt_keys_reload_s=0.05).validate()


def token(secret: str, kid: str | None) -> str:
    now = int(time.time())
    claims = {"iss": "tocsin", "aud": "tocsin", "sub": "t", "iat": now, "exp": now + 60, "scope": "admin worker"}
    return jwt.encode(claims, secret, algorithm="HS256", headers=None if kid is None else {"kid": kid})


def get(client: TestClient[Litestar], bearer: str) -> tuple[int, dict[str, object]]:
    response = client.get("/execution/variables/absent", headers={"Authorization": f"Bearer {bearer}"})
    return response.status_code, response.json()


def test__each_key_verifies_its_own_tokens(client: TestClient[Litestar]) -> None:
    assert get(client, token(K1, "k1"))[0] == 404  # past authentication: the variable is absent
    assert get(client, token(K2, "k2"))[0] == 404
    status, body = get(client, token(K1, "k2"))  # k1's signature under k2's id
    assert status == 401 and "the token is invalid" in str(body["detail"])


@pytest.mark.parametrize("kid", ["k3", "", "x" * 5000, "../../keys.json", "\u202ek1", "k1\x00"])
def test__an_unknown_or_hostile_kid__is_a_401_problem_naming_it(client: TestClient[Litestar], kid: str) -> None:
    response = client.get("/execution/variables/absent", headers={"Authorization": f"Bearer {token(K1, kid)}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:tocsin:problem:unauthorized"
    assert f"key id (kid) {kid[:80]!r} is unknown to this server" in body["detail"]


def test__no_kid_without_a_legacy_key__is_a_401_saying_so(client: TestClient[Litestar]) -> None:
    status, body = get(client, token(K1, None))
    assert status == 401 and "carries no key id (kid)" in str(body["detail"])


def test__a_key_retired_while_running__stops_verifying_even_a_cached_token(
    client: TestClient[Litestar], keys: Path
) -> None:
    by_k2 = token(K2, "k2")
    assert get(client, by_k2)[0] == 404  # verified once: cached
    write_keyring(keys, Keyring("k1", {"k1": K1}))
    deadline = time.monotonic() + 5
    while (answer := get(client, by_k2))[0] != 401:
        assert time.monotonic() < deadline, "k2 still verifies after its retirement"
        time.sleep(0.02)
    assert "'k2' is unknown" in str(answer[1]["detail"])
    assert get(client, token(K1, "k1"))[0] == 404
