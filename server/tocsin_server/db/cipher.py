"""Secrets at rest: encrypted with Fernet when keys are configured, stored as received otherwise.

Trigger kwargs, connection passwords and extras, and variable values go through this one cipher.
``TOCSIN_TRIGGER_KWARGS_KEYS`` holds comma-separated Fernet keys; the first encrypts, every one decrypts
(MultiFernet), so a key rotates by putting the new one first, running ``tocsin key rotate`` (which re-encrypts
every stored value with it) and then dropping the old one. Stored values carry a prefix, so plain rows written
before a key was configured still read, and plain and encrypted rows coexist during a rollout.

It lives in ``db`` (not ``services``) because the migration that encrypts existing rows uses it too.
"""

from __future__ import annotations

from typing import Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX: Final = "fernet:"
"""Marks an encrypted stored value; anything else is plain text."""


class KwargsCipherError(ValueError):
    """A stored secret cannot be decrypted with the configured keys."""


class KwargsCipher:
    def __init__(self, keys: tuple[str, ...] = ()) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def seal(self, text: str) -> str:
        if self._fernet is None:
            return text
        return PREFIX + self._fernet.encrypt(text.encode()).decode()

    def seal_optional(self, text: str | None) -> str | None:
        return None if text is None else self.seal(text)

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):  # the plaintext case costs one prefix check
            return stored
        if self._fernet is None:
            msg = "a stored value is encrypted but TOCSIN_TRIGGER_KWARGS_KEYS is not set"
            raise KwargsCipherError(msg)
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            msg = "a stored value was encrypted with a key that TOCSIN_TRIGGER_KWARGS_KEYS no longer holds"
            raise KwargsCipherError(msg) from None

    def open_optional(self, stored: str | None) -> str | None:
        return None if stored is None else self.open(stored)

    def reseal(self, stored: str) -> str:
        """``stored`` encrypted with the first key: plain values get sealed, values under an older key rotated."""
        if self._fernet is None:
            msg = "re-encrypting needs TOCSIN_TRIGGER_KWARGS_KEYS"
            raise KwargsCipherError(msg)
        if not stored.startswith(PREFIX):
            return self.seal(stored)
        try:
            return PREFIX + self._fernet.rotate(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            msg = "a stored value was encrypted with a key that TOCSIN_TRIGGER_KWARGS_KEYS no longer holds"
            raise KwargsCipherError(msg) from None


PLAINTEXT: Final = KwargsCipher()
"""No keys: values stored as received."""
