"""JWT bearer tokens: issuing and verifying, with a cache of verified tokens for the hot path.

Scopes: ``admin`` (operators), ``worker`` (task-instance state changes), ``triggerer`` (may register a job),
``job:<id>`` (the job-scoped token a registered triggerer gets) and ``ti:<uuid>`` (a task instance's token
for its trigger's runtime calls). Job and task-instance tokens are refreshed through the
``Refreshed-API-Token`` response header once past half their lifetime.

Keys: one secret (``TOCSIN_JWT_SECRET``; tokens carry no ``kid``, as before keyrings), or a keyring
(``TOCSIN_JWT_KEYS_FILE``, ``tocsin_server.signing_keys``): tokens are signed by its signing key and carry that
key's id in their header; a token verifies with the key its ``kid`` names, a token without one with the key
``legacy``. A refreshed token is signed by the key that signs now, so live clients move to a new key by themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import jwt
import msgspec

from tocsin_server.generated.models import DagIdValue, RunIdValue
from tocsin_server.signing_keys import LEGACY_KID, Keyring, KeyringSource

if TYPE_CHECKING:
    from tocsin_server.config import Settings

ALGORITHM: Final = "HS256"
SCOPES: Final = ("admin", "worker", "triggerer")
MAX_JOB_ID: Final = 2**53 - 1
"""Job ids stay within what JSON numbers carry exactly (as ``MAX_ID`` in the API)."""
_JOB_SCOPE: Final = re.compile(r"job:(?P<id>[1-9][0-9]{0,15})")
_TI_SCOPE: Final = re.compile(r"ti:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
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
    job_id: int | None = None
    """The job a job-scoped token (``job:<id>``) speaks for."""
    task_instance_id: str | None = None
    """The task instance of a task-instance token (``ti:<uuid>``)."""
    dag_run: tuple[str, str] | None = None
    """The dag run a task-instance token belongs to (scope ``run:<dag_id>/<run_id>``)."""

    @property
    def refreshable(self) -> bool:
        """Job and task-instance tokens are refreshed by the server before they expire; operator tokens are not."""
        return self.job_id is not None or self.task_instance_id is not None

    def needs_refresh(self, now: float) -> bool:
        """Past the first half of its lifetime."""
        return self.refreshable and self.expires_at - now < (self.expires_at - self.issued_at) / 2

    def has_any(self, allowed: frozenset[str]) -> bool:
        return not self.scopes.isdisjoint(allowed)


_KNOWN: Final = f"{', '.join(SCOPES)}, job:<id>, ti:<uuid> or run:<dag_id>/<run_id>"


def _malformed(scope: str, expected: str) -> TokenError:
    return TokenError(f"the token is invalid: its scope {scope[:80]!r} is malformed (expected {expected})")


def _valid(value: str, alias: object) -> bool:
    try:
        msgspec.convert(value, alias)
    except msgspec.ValidationError:
        return False
    return True


def _parse_scopes(scopes: frozenset[str]) -> tuple[int | None, str | None, tuple[str, str] | None]:
    """The job, task instance and dag run the scopes name; every scope must be one the server issues.

    Parsed once at verification (and cached with the token), so a signed but malformed scope is a 401 here
    rather than a crash in whichever route first reads it.
    """
    job_id: int | None = None
    task_instance_id: str | None = None
    dag_run: tuple[str, str] | None = None
    for scope in sorted(scopes):
        kind, colon, value = scope.partition(":")
        if not colon:
            if scope not in SCOPES:
                raise _malformed(scope, _KNOWN)
        elif kind == "job":
            match = _JOB_SCOPE.fullmatch(scope)
            if match is None or int(match["id"]) > MAX_JOB_ID or job_id is not None:
                raise _malformed(scope, "one job:<id> with a positive integer id")
            job_id = int(match["id"])
        elif kind == "ti":
            if _TI_SCOPE.fullmatch(scope) is None or task_instance_id is not None:
                raise _malformed(scope, "one ti:<uuid> with a lower-case UUID")
            task_instance_id = value
        elif kind == "run":
            dag_id, slash, run_id = value.partition("/")
            if not slash or dag_run is not None or not (_valid(dag_id, DagIdValue) and _valid(run_id, RunIdValue)):
                raise _malformed(scope, "one run:<dag_id>/<run_id> with ids as the API takes them")
            dag_run = (dag_id, run_id)
        else:
            raise _malformed(scope, _KNOWN)
    if dag_run is not None and task_instance_id is None:
        msg = "the token is invalid: a run:<dag_id>/<run_id> scope belongs to a task-instance token (ti:<uuid>)"
        raise TokenError(msg)
    return job_id, task_instance_id, dag_run


class TokenAuthority:
    """Signs and verifies tokens with one HMAC secret, or with the keys of a keyring (``keyring``).

    Verification results are cached by the raw token, so a hot client pays the signature check once; the
    expiry is still checked on every use, and the cache is emptied whenever the keyring changes (a token whose
    key was retired must not live on in it).
    """

    def __init__(self, secret: str, *, issuer: str, audience: str, keyring: KeyringSource | None = None) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._source = keyring
        self._held: Keyring | None = None
        self._verified: dict[str, Principal] = {}
        self._refreshed: dict[str, str] = {}
        self._signer: _Signer | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> TokenAuthority:
        """The authority the settings configure: the keyring file's keys when it is set, else the one secret."""
        source = None
        if settings.jwt_keys_file:
            source = KeyringSource.open(Path(settings.jwt_keys_file), settings.jwt_keys_reload_s)
        return cls(settings.jwt_secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience, keyring=source)

    def _keyring(self) -> Keyring | None:
        if self._source is None:
            return None
        keyring = self._source.current()
        if keyring is not self._held:
            self._held = keyring
            self._verified.clear()
            self._refreshed.clear()
            self._signer = None
        return keyring

    def issue(self, subject: str, scopes: list[str] | tuple[str, ...], ttl_s: float) -> str:
        now = int(time.time())
        claims: dict[str, str | int] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": now,
            "exp": now + int(ttl_s),
            "scope": " ".join(scopes),
        }
        keyring = self._keyring()  # first: a changed keyring drops the signer of the old signing key
        if (signer := self._signer) is None:
            if keyring is None:
                signer = _Signer(self._secret, kid=None)
            else:
                signer = _Signer(keyring.signing_secret, kid=keyring.signing)
            self._signer = signer
        return signer.sign(claims)

    def verify(self, token: str) -> Principal:
        keyring = self._keyring()  # first: a changed keyring empties the cache
        principal = self._verified.get(token)
        if principal is None:
            principal = self._decode(token, self._secret if keyring is None else _secret_for(token, keyring))
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()  # crude but bounded; expired entries go with the rest
            self._verified[token] = principal
        if principal.expires_at + _LEEWAY_S < time.time():
            self._verified.pop(token, None)
            msg = "the token has expired"
            raise TokenError(msg)
        return principal

    def _decode(self, token: str, secret: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                secret,
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
        if not isinstance(scope, str) or not scope.split():
            msg = "the token carries no scope"
            raise TokenError(msg)
        scopes = frozenset(scope.split())
        job_id, task_instance_id, dag_run = _parse_scopes(scopes)
        return Principal(
            subject=str(claims["sub"]),
            scopes=scopes,
            expires_at=float(claims["exp"]),
            issued_at=float(claims["iat"]),
            job_id=job_id,
            task_instance_id=task_instance_id,
            dag_run=dag_run,
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


def _b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


class _Signer:
    """HS256 JWTs for one key, prepared once: the header segment and the keyed HMAC state are reused per token.

    A triggerer taking a million workloads gets a million task-instance tokens; through ``jwt.encode`` each paid
    for the header's JSON, the key's preparation and checks, and PyJWT's layers, which was a fifth of the
    server's time. The tokens are the same standard compact JWS (``{"alg":"HS256","kid":…,"typ":"JWT"}`` header,
    JSON claims, HMAC-SHA256 over both) and are verified by ``jwt.decode`` as before.
    """

    __slots__ = ("_keyed", "_prefix")

    def __init__(self, secret: str, *, kid: str | None) -> None:
        header: dict[str, str] = {"alg": ALGORITHM, "typ": "JWT"}
        if kid is not None:
            header["kid"] = kid
        self._prefix = _b64url(msgspec.json.encode(dict(sorted(header.items())))) + b"."
        self._keyed = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def sign(self, claims: dict[str, str | int]) -> str:
        signing_input = self._prefix + _b64url(msgspec.json.encode(claims))
        mac = self._keyed.copy()
        mac.update(signing_input)
        return (signing_input + b"." + _b64url(mac.digest())).decode()


def _secret_for(token: str, keyring: Keyring) -> str:
    """The secret of the key the token's header names (``kid``); a token without one is the legacy key's."""
    try:
        header = jwt.get_unverified_header(token)  # pyjwt checks that a kid is a string
    except jwt.PyJWTError as exc:
        msg = f"the token is invalid: {exc}"
        raise TokenError(msg) from None
    kid = header.get("kid")
    if kid is None:
        if (secret := keyring.keys.get(LEGACY_KID)) is None:
            msg = (
                "the token carries no key id (kid): it was signed before this server had a keyring, and the "
                f"keyring's {LEGACY_KID!r} key that verified such tokens was retired"
            )
            raise TokenError(msg)
        return secret
    if (secret := keyring.keys.get(kid)) is None:
        msg = (
            f"the token's key id (kid) {kid[:80]!r} is unknown to this server: the key was retired, or this "
            "server's keyring does not hold it yet"
        )
        raise TokenError(msg)
    return secret
