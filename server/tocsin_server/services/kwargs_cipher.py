"""The cipher of secrets at rest, named where the services have always imported it (it lives in ``db.cipher``)."""

from __future__ import annotations

from tocsin_server.db.cipher import PLAINTEXT, KwargsCipher, KwargsCipherError

__all__ = ["PLAINTEXT", "KwargsCipher", "KwargsCipherError"]
