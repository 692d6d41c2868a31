"""The keyring of token-signing keys: one JSON file listing key id (``kid``) → HMAC secret, one of them marked as
the key that signs; every key in it verifies.

```json
{"signing": "20261201-3fa9c1", "keys": {"legacy": "…", "20261201-3fa9c1": "…"}}
```

One file, because an operator running several replicas distributes one thing (a mounted secret, a file pushed by
configuration management) and every ``tocsin key signing`` command edits it in place. A running server re-reads
it when it changes (``KeyringSource``: a ``stat`` at most once per ``TOCSIN_JWT_KEYS_RELOAD_S``, never per
request), so a rotation needs no restart. The key with id ``legacy`` is the secret a server used before it had a
keyring (``tocsin key signing add`` imports it when it creates the file): it also verifies the tokens that carry
no ``kid``, those signed before the keyring existed.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from tocsin_server.config import MIN_SECRET_BYTES, ConfigError

__all__ = [
    "LEGACY_KID",
    "Keyring",
    "KeyringError",
    "KeyringSource",
    "check_kid",
    "new_kid",
    "new_secret",
    "read_keyring",
    "write_keyring",
]

LEGACY_KID: Final = "legacy"
"""The id of the secret imported from ``TOCSIN_JWT_SECRET`` (or its file); it also verifies tokens without a kid."""
_KID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_log = logging.getLogger("tocsin.server.keys")


class KeyringError(ConfigError):
    """The keyring file is missing, unreadable, open to others or not a keyring; the message names the file."""


@dataclass(frozen=True, slots=True)
class Keyring:
    """Key id → secret (in file order) and the id of the key that signs."""

    signing: str
    keys: dict[str, str] = field(repr=False)

    @property
    def signing_secret(self) -> str:
        return self.keys[self.signing]

    def describe(self) -> str:
        """For log lines and messages: which key signs and which verify (never a secret)."""
        return f"{self.signing} signs; {', '.join(self.keys)} verify"


class _File(msgspec.Struct, forbid_unknown_fields=True):
    signing: str
    keys: dict[str, str]


def check_kid(kid: str) -> str | None:
    """What is wrong with ``kid`` as a key id, or None."""
    if _KID.fullmatch(kid) is None:
        return f"{kid[:80]!r} is not a key id: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def new_kid(taken: dict[str, str]) -> str:
    """A fresh key id that sorts by creation day: ``20261201-3fa9c1``."""
    while (kid := f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}") in taken:
        pass  # pragma: no cover - 16 million ids a day
    return kid


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def _parse(text: bytes, where: str) -> Keyring:
    try:
        raw = msgspec.json.decode(text, type=_File)
    except msgspec.DecodeError as exc:
        msg = f'{where} is not a keyring ({{"signing": KID, "keys": {{KID: SECRET, …}}}}): {exc}'
        raise KeyringError(msg) from None
    for kid, secret in raw.keys.items():
        if (problem := check_kid(kid)) is not None:
            raise KeyringError(f"{where}: {problem}")
        if (size := len(secret.encode())) < MIN_SECRET_BYTES:
            msg = f"{where}: key {kid} holds a secret of {size} bytes; it needs at least {MIN_SECRET_BYTES}"
            raise KeyringError(msg)
    if raw.signing not in raw.keys:
        msg = f"{where}: the signing key {raw.signing!r} is not among its keys ({', '.join(raw.keys) or 'none'})"
        raise KeyringError(msg)
    return Keyring(signing=raw.signing, keys=dict(raw.keys))


Signature = tuple[int, int, int, int]
"""What tells one version of the file from the next: device, inode, mtime (ns), size."""


def _signature(status: os.stat_result) -> Signature:
    return (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)


def read_keyring(path: Path) -> tuple[Keyring, Signature]:
    """The keyring in ``path`` and the signature of the version read. The file must be its owner's alone."""
    where = f"TOCSIN_JWT_KEYS_FILE={str(path)!r}"
    try:
        with path.open("rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise KeyringError(f"{where} is not a file")
            if stat.S_IMODE(status.st_mode) & 0o077:
                msg = (
                    f"{where} may be read or written by its group or others (mode {stat.S_IMODE(status.st_mode):04o}); "
                    f"it holds signing secrets: chmod 600 {path}"
                )
                raise KeyringError(msg)
            text = file.read()
    except FileNotFoundError:
        msg = f"{where} does not exist; make it with: tocsin key signing add"
        raise KeyringError(msg) from None
    except OSError as exc:
        msg = f"{where} cannot be read: {exc.strerror}"
        raise KeyringError(msg) from None
    return _parse(text, where), _signature(status)


def write_keyring(path: Path, keyring: Keyring) -> None:
    """Replace ``path`` with ``keyring`` in one step (a new file renamed over the old, mode 0600), so a server
    re-reading it sees the old version or the new one, never half of one."""
    text = msgspec.json.format(msgspec.json.encode({"signing": keyring.signing, "keys": keyring.keys}), indent=2)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(text + b"\n")
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        msg = f"TOCSIN_JWT_KEYS_FILE={str(path)!r} cannot be written: {exc.strerror}"
        raise KeyringError(msg) from None


class KeyringSource:
    """The keyring a server holds, re-read when its file changes.

    ``current()`` is called on every request; it looks at the file (one ``stat``) at most once per
    ``reload_s`` and reads it only when its signature changed. A file that turned bad (a typo in a hand edit,
    wrong permissions) keeps the keys held before and is logged once per version, never a failed request.
    """

    def __init__(self, path: Path, keyring: Keyring, signature: Signature, reload_s: float) -> None:
        self.path = path
        self._keyring = keyring
        self._signature = signature
        self._reload_s = reload_s
        self._next_look = time.monotonic() + reload_s
        self._reported: str | None = None

    @classmethod
    def open(cls, path: Path, reload_s: float) -> KeyringSource:
        keyring, signature = read_keyring(path)
        return cls(path, keyring, signature, reload_s)

    def current(self) -> Keyring:
        if (now := time.monotonic()) >= self._next_look:
            self._next_look = now + self._reload_s
            self._look()
        return self._keyring

    def _look(self) -> None:
        try:
            if _signature(self.path.stat()) == self._signature:
                return
            keyring, self._signature = read_keyring(self.path)
        except KeyringError as exc:
            self._report(f"{exc}; still using the keys read before ({self._keyring.describe()})")
            return
        except OSError as exc:
            self._report(
                f"TOCSIN_JWT_KEYS_FILE={str(self.path)!r} cannot be read: {exc.strerror}; still using "
                f"the keys read before ({self._keyring.describe()})"
            )
            return
        self._reported = None
        if keyring != self._keyring:
            self._keyring = keyring
            _log.warning("signing keys reloaded from %s: %s", self.path, keyring.describe())

    def _report(self, problem: str) -> None:
        if problem != self._reported:
            self._reported = problem
            _log.warning("%s", problem)
