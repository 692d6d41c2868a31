"""The keyring of signing keys: its file, its reloading, and tokens signed and verified by key id (``kid``)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from tocsin_server.config import ConfigError, load_settings
from tocsin_server.signing_keys import Keyring, KeyringError, KeyringSource, read_keyring, write_keyring
from tocsin_server.web.tokens import TokenAuthority, TokenError

A = "a" * 40
B = "b" * 40
LEGACY = "l" * 40


def keyring_file(path: Path, signing: str, **keys: str) -> Path:
    write_keyring(path, Keyring(signing, keys))
    return path


def authority(source: KeyringSource) -> TokenAuthority:
    return TokenAuthority("", issuer="tocsin", audience="tocsin", keyring=source)


def poll(predicate: Callable[[], object], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(0.01)


def test__write_then_read__round_trips_owner_only(tmp_path: Path) -> None:
    path = keyring_file(tmp_path / "keys.json", "k2", k1=A, k2=B)
    keyring, _ = read_keyring(path)
    assert keyring == Keyring("k2", {"k1": A, "k2": B})
    assert list(keyring.keys) == ["k1", "k2"]  # file order kept
    assert path.stat().st_mode & 0o777 == 0o600
    assert A not in repr(keyring) and A not in keyring.describe()
    assert json.loads(path.read_text()) == {"signing": "k2", "keys": {"k1": A, "k2": B}}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not a keyring"),
        ('{"signing": "k1"}', "is not a keyring"),
        ('{"signing": "k1", "keys": {"k1": "' + A + '"}, "extra": 1}', "is not a keyring"),
        ('{"signing": "k9", "keys": {"k1": "' + A + '"}}', "the signing key 'k9' is not among its keys (k1)"),
        ('{"signing": "k1", "keys": {"k1": "short"}}', "key k1 holds a secret of 5 bytes; it needs at least 32"),
        ('{"signing": "a b", "keys": {"a b": "' + A + '"}}', "'a b' is not a key id"),
    ],
    ids=["not-json", "no-keys", "unknown-field", "signing-unknown", "short-secret", "bad-kid"],
)
def test__a_file_that_is_not_a_keyring__is_one_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyringError, match="TOCSIN_JWT_KEYS_FILE=") as raised:
        read_keyring(path)
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test__a_file_open_to_others__missing__or_a_folder__is_refused(tmp_path: Path) -> None:
    path = keyring_file(tmp_path / "keys.json", "k1", k1=A)
    path.chmod(0o640)
    with pytest.raises(KeyringError, match=r"by its group or others \(mode 0640\).*chmod 600"):
        read_keyring(path)
    with pytest.raises(KeyringError, match="does not exist; make it with: tocsin key signing add"):
        read_keyring(tmp_path / "absent.json")
    with pytest.raises(KeyringError, match="cannot be read: Is a directory"):
        read_keyring(tmp_path)


def test__settings__read_the_keyring_at_start_and_need_no_secret(tmp_path: Path) -> None:
    path = keyring_file(tmp_path / "keys.json", "k1", k1=A)
    settings = load_settings({"TOCSIN_JWT_KEYS_FILE": str(path), "TOCSIN_JWT_KEYS_RELOAD_S": "2.5"})
    assert (settings.jwt_keys_file, settings.jwt_keys_reload_s, settings.jwt_secret) == (str(path), 2.5, "")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_settings({"TOCSIN_JWT_KEYS_FILE": str(path)})
    with pytest.raises(ConfigError, match="TOCSIN_JWT_KEYS_RELOAD_S must be positive"):
        load_settings({"TOCSIN_JWT_SECRET": A, "TOCSIN_JWT_KEYS_RELOAD_S": "0"})


def test__tokens_carry_the_signing_kid_and_verify_by_it(tmp_path: Path) -> None:
    path = keyring_file(tmp_path / "keys.json", "k2", k1=A, k2=B)
    tokens = authority(KeyringSource.open(path, 3600))
    token = tokens.issue("me", ["admin"], 60)
    assert jwt.get_unverified_header(token)["kid"] == "k2"
    jwt.decode(token, B, algorithms=["HS256"], audience="tocsin")  # signed by k2's secret
    assert tokens.verify(token).scopes == {"admin"}
    by_k1 = TokenAuthority(A, issuer="tocsin", audience="tocsin").issue("old", ["admin"], 60)
    old = jwt.encode(jwt.decode(by_k1, A, algorithms=["HS256"], audience="tocsin"), A, headers={"kid": "k1"})
    assert tokens.verify(old).subject == "old"
    forged = jwt.encode(jwt.decode(by_k1, A, algorithms=["HS256"], audience="tocsin"), A, headers={"kid": "k2"})
    with pytest.raises(TokenError, match="the token is invalid"):
        tokens.verify(forged)  # k2's kid, k1's signature


def test__an_unknown_kid__a_kid_that_is_no_string__and_no_kid_without_legacy__are_named(tmp_path: Path) -> None:
    tokens = authority(KeyringSource.open(keyring_file(tmp_path / "keys.json", "k1", k1=A), 3600))
    claims = jwt.decode(tokens.issue("me", ["admin"], 60), A, algorithms=["HS256"], audience="tocsin")
    with pytest.raises(TokenError, match=r"key id \(kid\) 'gone' is unknown to this server"):
        tokens.verify(jwt.encode(claims, A, headers={"kid": "gone"}))
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":7}').rstrip(b"=").decode()
    with pytest.raises(TokenError, match="the token is invalid"):
        tokens.verify(".".join([header, *jwt.encode(claims, A).split(".")[1:]]))
    with pytest.raises(TokenError, match=r"carries no key id \(kid\).*'legacy' key .* was retired"):
        tokens.verify(jwt.encode(claims, A))
    with pytest.raises(TokenError, match="the token is invalid"):
        tokens.verify("not-a-jwt")


def test__tokens_without_kid__verify_with_the_legacy_key(tmp_path: Path) -> None:
    before = TokenAuthority(LEGACY, issuer="tocsin", audience="tocsin").issue("before", ["admin"], 60)
    assert "kid" not in jwt.get_unverified_header(before)  # one secret: tokens as they always were
    tokens = authority(KeyringSource.open(keyring_file(tmp_path / "k.json", "k1", legacy=LEGACY, k1=A), 3600))
    assert tokens.verify(before).subject == "before"


def test__one_secret__ignores_a_kid_signed_with_that_secret() -> None:
    # a server not yet given the keyring, during the rolling restart that adopts it
    one = TokenAuthority(LEGACY, issuer="tocsin", audience="tocsin")
    claims = jwt.decode(one.issue("x", ["admin"], 60), LEGACY, algorithms=["HS256"], audience="tocsin")
    assert one.verify(jwt.encode(claims, LEGACY, headers={"kid": "legacy"})).subject == "x"


def test__the_source_looks_at_the_file_at_most_once_per_interval(tmp_path: Path) -> None:
    path = keyring_file(tmp_path / "keys.json", "k1", k1=A)
    slow = KeyringSource.open(path, 3600)
    fast = KeyringSource.open(path, 0.05)
    keyring_file(path, "k2", k1=A, k2=B)
    poll(lambda: fast.current().signing == "k2", "the fast source re-reads the changed file")
    assert slow.current().signing == "k1"  # not looked at again within its interval: no stat per request


def test__a_reload__drops_cached_tokens_of_a_retired_key_and_refreshes_with_the_new_one(tmp_path: Path) -> None:
    path = keyring_file(tmp_path / "keys.json", "k1", k1=A)
    tokens = authority(KeyringSource.open(path, 0.05))
    job = tokens.issue("job:1", ["job:1"], 60)
    principal = tokens.verify(job)  # now cached
    keyring_file(path, "k2", k1=A, k2=B)
    poll(lambda: jwt.get_unverified_header(tokens.issue("x", ["admin"], 60))["kid"] == "k2", "k2 signs")
    assert tokens.verify(job).job_id == 1  # k1 still verifies
    assert jwt.get_unverified_header(tokens.refreshed(job, principal))["kid"] == "k2"
    keyring_file(path, "k2", k2=B)
    poll(lambda: "k1" not in tokens._keyring().keys, "k1 retired")  # type: ignore[union-attr]
    with pytest.raises(TokenError, match="'k1' is unknown"):
        tokens.verify(job)  # not served from the cache


def test__a_file_that_turns_bad__keeps_the_keys_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = keyring_file(tmp_path / "keys.json", "k1", k1=A)
    source = KeyringSource.open(path, 0.01)
    caplog.set_level(logging.WARNING, "tocsin.server.keys")
    partial = tmp_path / "edit.json"
    partial.write_text('{"signing": "k1", "keys": {"k1": "')
    partial.chmod(0o600)
    partial.replace(path)
    poll(lambda: source.current() and caplog.records, "the bad file is reported")
    for _ in range(5):
        time.sleep(0.02)
        assert source.current() == Keyring("k1", {"k1": A})
    assert len(caplog.records) == 1, caplog.text
    assert "is not a keyring" in caplog.text and "still using the keys read before (k1 signs" in caplog.text
    keyring_file(path, "k2", k1=A, k2=B)
    poll(lambda: source.current().signing == "k2", "the mended file is read")
    assert "signing keys reloaded" in caplog.records[-1].getMessage()
