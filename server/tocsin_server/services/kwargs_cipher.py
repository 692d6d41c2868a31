"""Trigger kwargs at rest: encrypted with Fernet when keys are configured, plain JSON text otherwise.

``TOCSIN_TRIGGER_KWARGS_KEYS`` holds comma-separated Fernet keys; the first encrypts, every one decrypts
(MultiFernet), so a key rotates by putting the new one first and dropping the old one once no trigger
needs it. Stored values carry a prefix, so plain rows written before a key was configured still read.
"""

from __future__ import annotations

from typing import Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_PREFIX: Final = "fernet:"


class KwargsCipherError(ValueError):
    """Stored trigger kwargs cannot be decrypted with the configured keys."""


class KwargsCipher:
    def __init__(self, keys: tuple[str, ...] = ()) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def seal(self, json_text: str) -> str:
        if self._fernet is None:
            return json_text
        return _PREFIX + self._fernet.encrypt(json_text.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(_PREFIX):
            return stored
        if self._fernet is None:
            msg = "trigger kwargs are encrypted but TOCSIN_TRIGGER_KWARGS_KEYS is not set"
            raise KwargsCipherError(msg)
        try:
            return self._fernet.decrypt(stored[len(_PREFIX) :].encode()).decode()
        except InvalidToken:
            msg = "trigger kwargs were encrypted with a key that TOCSIN_TRIGGER_KWARGS_KEYS no longer holds"
            raise KwargsCipherError(msg) from None


PLAINTEXT: Final = KwargsCipher()
"""No keys: kwargs stored as the JSON text received."""
