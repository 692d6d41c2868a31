"""``tocsin key signing add|promote|retire|list``: the steps of a signing-key rotation, as edits of the keyring file.

Each command reads the file ``TOCSIN_JWT_KEYS_FILE`` (or ``--file``) names, changes one thing and writes it back in
one step; servers pick the change up by themselves (``signing_keys.KeyringSource``). Key ids go to stdout (so a
script can keep them: ``NEW=$(tocsin key signing add)``), what happened and what comes next to stderr, secrets
nowhere. An operator mistake (an unknown key id, retiring the key that signs, a file that cannot be read or is
open to others) is one line and exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

from tocsin_wire.settings import SettingsError, load

from tocsin_server.config import MIN_SECRET_BYTES, ConfigError, Settings, reports_config_errors, resolve_secret
from tocsin_server.signing_keys import (
    LEGACY_KID,
    Keyring,
    check_kid,
    new_kid,
    new_secret,
    read_keyring,
    write_keyring,
)

__all__ = ["key_signing_add", "key_signing_list", "key_signing_promote", "key_signing_retire"]

_P = ParamSpec("_P")
_WHEN_RELOADED = "servers re-read the file within TOCSIN_JWT_KEYS_RELOAD_S"


def _reports_mistakes(verb: str) -> Callable[[Callable[_P, int]], Callable[_P, int]]:
    return reports_config_errors(f"tocsin key signing {verb}")


def _keyring_path(file: str | None) -> Path:
    # the loader alone, not load_settings: these commands need no database URL checked (nor SQLAlchemy imported)
    try:
        path = load(Settings, os.environ, jwt_keys_file=file).jwt_keys_file
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    if not path:
        msg = "no keyring file: set TOCSIN_JWT_KEYS_FILE (the file the servers read) or pass --file"
        raise ConfigError(msg)
    return Path(path)


def _known(keyring: Keyring, kid: str, path: Path) -> None:
    if kid not in keyring.keys:
        msg = f"{path} has no key {kid[:80]!r} (its keys: {', '.join(keyring.keys)}); see: tocsin key signing list"
        raise ConfigError(msg)


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


@_reports_mistakes("add")
def key_signing_add(*, file: str | None, kid: str | None) -> int:
    """Add a new key that verifies but does not sign yet; the first key of a new file signs.

    A new file starts with the secret the servers sign with today (``TOCSIN_JWT_SECRET``, its file or
    ``./tocsin-jwt-secret``, found as every command finds it) as the key ``legacy``, which keeps signing until
    the new key is promoted and verifies the tokens issued before (they carry no kid).
    """
    path = _keyring_path(file)
    if kid is not None and (problem := check_kid(kid)) is not None:
        raise ConfigError(problem)
    if kid == LEGACY_KID:
        msg = f"{LEGACY_KID!r} is the id of the secret a new keyring imports; choose another --kid"
        raise ConfigError(msg)
    if os.path.lexists(path):
        keyring, _ = read_keyring(path)
        if kid is not None and kid in keyring.keys:
            msg = f"{path} already has a key {kid!r}; choose another --kid"
            raise ConfigError(msg)
        kid = kid or new_kid(keyring.keys)
        write_keyring(path, Keyring(keyring.signing, {**keyring.keys, kid: new_secret()}))
        _say(
            f"added key {kid} to {path}; it verifies, {keyring.signing} still signs. Once every server has this "
            f"file ({_WHEN_RELOADED}): tocsin key signing promote {kid}"
        )
    else:
        legacy, source = resolve_secret(os.environ)
        kid = kid or new_kid({})
        if legacy:
            if (size := len(legacy.encode())) < MIN_SECRET_BYTES:
                msg = f"{source} holds a secret of {size} bytes, too short for a key (at least {MIN_SECRET_BYTES})"
                raise ConfigError(msg)
            write_keyring(path, Keyring(LEGACY_KID, {LEGACY_KID: legacy, kid: new_secret()}))
            _say(
                f"created {path} with the current secret ({source}) as key {LEGACY_KID}, which signs and verifies "
                f"tokens without a kid, and key {kid}, which verifies. Put the file on every server, set "
                f"TOCSIN_JWT_KEYS_FILE there and restart them one at a time; then: tocsin key signing promote {kid}"
            )
        else:
            write_keyring(path, Keyring(kid, {kid: new_secret()}))
            _say(f"created {path} with key {kid}, which signs; servers with TOCSIN_JWT_KEYS_FILE={path} use it")
    sys.stdout.write(kid + "\n")
    return 0


@_reports_mistakes("promote")
def key_signing_promote(*, file: str | None, kid: str) -> int:
    """Make ``kid`` the key that signs; the one before keeps verifying until it is retired."""
    path = _keyring_path(file)
    keyring, _ = read_keyring(path)
    _known(keyring, kid, path)
    if keyring.signing == kid:
        _say(f"{kid} already signs; nothing changed")
        return 0
    write_keyring(path, Keyring(kid, keyring.keys))
    _say(
        f"{kid} signs now ({_WHEN_RELOADED}); {keyring.signing} still verifies. After the longest lifetime of the "
        f"tokens it signed: tocsin key signing retire {keyring.signing}"
    )
    return 0


@_reports_mistakes("retire")
def key_signing_retire(*, file: str | None, kid: str) -> int:
    """Remove ``kid``: tokens it signed get 401 once servers re-read the file. Never the key that signs."""
    path = _keyring_path(file)
    keyring, _ = read_keyring(path)
    _known(keyring, kid, path)
    if keyring.signing == kid:
        msg = f"{kid} is the key that signs; promote another first (tocsin key signing promote KID)"
        raise ConfigError(msg)
    write_keyring(path, Keyring(keyring.signing, {k: v for k, v in keyring.keys.items() if k != kid}))
    _say(f"retired {kid} from {path}; tokens it signed get 401 once {_WHEN_RELOADED}")
    return 0


@_reports_mistakes("list")
def key_signing_list(*, file: str | None, signing: bool) -> int:
    """Each key id with its role (never a secret); with ``signing``, the id of the signing key alone."""
    path = _keyring_path(file)
    keyring, _ = read_keyring(path)
    if signing:
        sys.stdout.write(keyring.signing + "\n")
        return 0
    width = max(len(kid) for kid in keyring.keys)
    for kid in keyring.keys:
        role = "signs and verifies" if kid == keyring.signing else "verifies"
        if kid == LEGACY_KID:
            role += ", also tokens without a kid"
        sys.stdout.write(f"{kid:<{width}}  {role}\n")
    return 0
