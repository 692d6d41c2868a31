"""JWT bearer tokens: issuing and verifying, with a cache of verified tokens for the hot path.

Scopes: ``admin`` (operators), ``worker`` (task-instance state changes), ``triggerer`` (may register a job),
``job:<id>`` (the job-scoped token a registered triggerer gets) and ``ti:<uuid>`` (a task instance's token
for its trigger's runtime calls). Job and task-instance tokens are refreshed through the
``Refreshed-API-Token`` response header once past half their lifetime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import jwt

ALGORITHM: Final = "HS256"
SCOPES: Final = ("admin", "worker", "triggerer")
_CACHE_LIMIT: Final = 50_000
_LEEWAY_S: Final = 5


class TokenError(Exception):
    """The token is missing, malformed, expired or not ours."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for."""

    subject: str
    scopes: frozenset[str]
    expires_at: float
    issued_at: float = 0.0

    @property
    def refreshable(self) -> bool:
        """Job and task-instance tokens are refreshed by the server before they expire; operator tokens are not."""
        return self.job_id is not None or self.task_instance_id is not None

    def needs_refresh(self, now: float) -> bool:
        """Past the first half of its lifetime."""
        return self.refreshable and self.expires_at - now < (self.expires_at - self.issued_at) / 2

    def has_any(self, allowed: frozenset[str]) -> bool:
        return not self.scopes.isdisjoint(allowed)

    @property
    def task_instance_id(self) -> str | None:
        for scope in self.scopes:
            if scope.startswith("ti:"):
                return scope[3:]
        return None

    @property
    def dag_run(self) -> tuple[str, str] | None:
        """The dag run a task-instance token belongs to (scope ``run:<dag_id>/<run_id>``)."""
        for scope in self.scopes:
            if scope.startswith("run:"):
                dag_id, _, run_id = scope[4:].partition("/")
                return dag_id, run_id
        return None

    @property
    def job_id(self) -> int | None:
        for scope in self.scopes:
            if scope.startswith("job:"):
                return int(scope[4:])
        return None


class TokenAuthority:
    """Signs and verifies tokens with one HMAC secret.

    Verification results are cached by the raw token, so a hot client pays the signature check once; the
    expiry is still checked on every use.
    """

    def __init__(self, secret: str, *, issuer: str, audience: str) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._verified: dict[str, Principal] = {}
        self._refreshed: dict[str, str] = {}

    def issue(self, subject: str, scopes: list[str] | tuple[str, ...], ttl_s: float) -> str:
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": now,
            "exp": now + int(ttl_s),
            "scope": " ".join(scopes),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        principal = self._verified.get(token)
        if principal is None:
            principal = self._decode(token)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()  # crude but bounded; expired entries go with the rest
            self._verified[token] = principal
        if principal.expires_at + _LEEWAY_S < time.time():
            self._verified.pop(token, None)
            msg = "the token has expired"
            raise TokenError(msg)
        return principal

    def _decode(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            msg = "the token has expired"
            raise TokenError(msg) from None
        except jwt.PyJWTError as exc:
            msg = f"the token is invalid: {exc}"
            raise TokenError(msg) from None
        scope = claims.get("scope")
        if not isinstance(scope, str) or not scope:
            msg = "the token carries no scope"
            raise TokenError(msg)
        return Principal(
            subject=str(claims["sub"]),
            scopes=frozenset(scope.split()),
            expires_at=float(claims["exp"]),
            issued_at=float(claims["iat"]),
        )

    def refreshed(self, token: str, principal: Principal) -> str:
        """A fresh token with the same subject, scopes and lifetime; the same answer for the same old token."""
        fresh = self._refreshed.get(token)
        if fresh is None:
            if len(self._refreshed) >= _CACHE_LIMIT:
                self._refreshed.clear()
            ttl = max(principal.expires_at - principal.issued_at, 1.0)
            fresh = self._refreshed[token] = self.issue(principal.subject, sorted(principal.scopes), ttl)
        return fresh
