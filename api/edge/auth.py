"""Who is calling the app-facing endpoints: the app's routes are anonymous at the Functions
level (no shared secret ships in the app), so every request is authenticated here.

- A server, not a person, presents a named key of Ahoy's own in X-Ahoy-Key: CALLER_KEYS holds
  each name with the SHA-256 of its key (compared in constant time); the caller is `key:<name>`,
  with its own limits and records. Rotate by listing the name twice, old and new key.
- Otherwise the user, by CALLER_AUTH:
  - `easyauth` (default): App Service Authentication has signed the user in; its headers are
    trusted only when WEBSITE_AUTH_ENABLED is true (otherwise anyone could send them);
  - `jwt`: an OIDC bearer token checked here with PyJWT against the issuer's JWKS;
  - `key`: no users: only named keys are accepted.
DEV_PRINCIPAL (local host on loopback only, see settings) replaces the user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import logging
import threading
import time
import urllib.request
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import azure.functions as func

from api.core.errors import Forbidden, NotAuthenticated, ServiceUnavailable
from api.core.settings import Settings, get_settings

if TYPE_CHECKING:
    import jwt

log = logging.getLogger("ahoy.auth")

CALLER_KEY_HEADER = "X-Ahoy-Key"
JWT_ALGORITHMS = ["RS256", "ES256"]  # pinned: never taken from the token
JWT_LEEWAY_SECONDS = 30
JWKS_REFETCH_SECONDS = 60
JWKS_DEADLINE_SECONDS = 2.0  # the whole fetch: connection, headers and body
JWKS_MAX_BYTES = 1 << 20
JWKS_FAILURE_SECONDS = 10
_INVALID_BEARER_CHALLENGE = 'Bearer error="invalid_token"'


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: `id` is stable (limits, ownership and idempotency use it)."""

    id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    name: str | None = None  # a display name, when the identity provider gives one

    @property
    def admin(self) -> bool:
        return "admin" in self.roles


def authenticate(req: func.HttpRequest) -> Caller:
    """The caller of an app-facing request, or NotAuthenticated (401)."""
    settings = get_settings()
    presented = req.headers.get(CALLER_KEY_HEADER)
    if presented is not None:  # a server names itself: checked even under DEV_PRINCIPAL
        return _from_caller_key(presented, settings)
    if settings.dev_principal is not None:
        return Caller(settings.dev_principal, frozenset({"admin"}), settings.dev_principal)
    if settings.caller_auth == "key":
        raise NotAuthenticated(f"Send this server's key in {CALLER_KEY_HEADER}.")
    if settings.caller_auth == "jwt":
        return _from_bearer_token(req, settings)
    return _from_easy_auth(req, settings)


def _from_caller_key(presented: str, settings: Settings) -> Caller:
    digest = hashlib.sha256(presented.encode()).hexdigest()
    named = None
    for name, expected in settings.caller_keys:  # every entry compared: no early exit
        if hmac.compare_digest(digest, expected):
            named = name
    if named is None:
        raise NotAuthenticated(f"The key in {CALLER_KEY_HEADER} is not one of CALLER_KEYS.")
    return Caller(f"key:{named}", name=named)


def require_admin(caller: Caller) -> None:
    """Mobile Services' "admin" level: an `admin` role (Easy Auth or JWT `roles` claim)."""
    if not caller.admin:
        raise Forbidden("This needs the admin role.")


def warn_about_key_mode() -> None:
    if get_settings().caller_auth == "key":
        log.warning(
            "CALLER_AUTH=key: no user signs in; only the servers named in CALLER_KEYS may "
            "call, each with its own limits and records"
        )


def _from_easy_auth(req: func.HttpRequest, settings: Settings) -> Caller:
    if not settings.easy_auth_enabled:
        raise NotAuthenticated("App Service Authentication is not enabled for this app.")
    principal_id = req.headers.get("x-ms-client-principal-id", "").strip()
    if not principal_id:
        raise NotAuthenticated("Sign in first.")
    roles, name = _easy_auth_claims(req.headers.get("x-ms-client-principal"))
    return Caller(principal_id, roles, name)


def _easy_auth_claims(encoded: str | None) -> tuple[frozenset[str], str | None]:
    """The principal's roles and display name (`name_typ`, else `name`)."""
    if not encoded:
        return frozenset(), None
    try:
        principal = json.loads(base64.b64decode(encoded))
        role_type = principal.get("role_typ") or "roles"
        name_type = principal.get("name_typ") or "name"
        claims = principal.get("claims", [])
        roles = frozenset(
            str(claim["val"]) for claim in claims if claim.get("typ") in (role_type, "roles")
        )
        names = [str(c["val"]) for c in claims if c.get("typ") in (name_type, "name")]
    except (binascii.Error, ValueError, AttributeError, KeyError, TypeError):
        return frozenset(), None
    return roles, _display_name(names[0] if names else None)


def _from_bearer_token(req: func.HttpRequest, settings: Settings) -> Caller:
    import jwt

    scheme, _, token = req.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(
            "Send an OIDC access token as a Bearer token.", www_authenticate="Bearer"
        )
    try:
        header = jwt.get_unverified_header(token.strip())
        key = _jwks(settings).key_for(str(header.get("kid", "")))
        claims: dict[str, Any] = jwt.decode(
            token.strip(),
            key=key,
            algorithms=JWT_ALGORITHMS,
            audience=settings.oidc_audience,
            issuer=settings.oidc_issuer,
            leeway=JWT_LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError:
        raise NotAuthenticated(
            "The bearer token is invalid or expired.", www_authenticate=_INVALID_BEARER_CHALLENGE
        ) from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip():
        raise NotAuthenticated(  # an empty subject is nobody, not a caller named ""
            "The bearer token names no subject.", www_authenticate=_INVALID_BEARER_CHALLENGE
        )
    roles = claims.get("roles", [])
    return Caller(
        subject,
        frozenset(map(str, roles)) if isinstance(roles, list) else frozenset(),
        _display_name(claims.get("name")),
    )


def _display_name(value: object) -> str | None:
    """A name fit to show a callee: text, trimmed, at most 64 characters, no control ones."""
    if not isinstance(value, str):
        return None
    shown = "".join(c for c in value if c.isprintable()).strip()[:64]
    return shown or None


class Jwks:
    """The issuer's signing keys: cached, refetched on an unknown kid at most once a minute.

    A caller whose key is cached never waits for a fetch (no lock on that path), and no caller
    waits on a fetch another one has under way (503 at once). The fetch has a total deadline,
    JWKS_DEADLINE_SECONDS, however slowly the issuer answers. Any failure of it (unreachable,
    TLS, a redirect, an error status, a body cut short, too long, not JSON, not a key set) is
    remembered for JWKS_FAILURE_SECONDS: unknown kids meanwhile get a 503 at once.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._failed_until = float("-inf")
        self._lock = threading.Lock()

    def key_for(self, kid: str) -> jwt.PyJWK:
        import jwt

        cached = self._keys.get(kid)
        if cached is not None:
            return cached
        if not self._lock.acquire(blocking=False):
            raise _keys_unavailable()  # a fetch is under way: never wait on it
        try:
            now = time.monotonic()
            if kid not in self._keys and now < self._failed_until:
                raise _keys_unavailable()
            if kid not in self._keys and now - self._fetched_at >= JWKS_REFETCH_SECONDS:
                try:
                    self._keys = self._fetch()
                except ServiceUnavailable:
                    self._failed_until = time.monotonic() + JWKS_FAILURE_SECONDS
                    raise
                self._fetched_at = now
            if kid not in self._keys:
                raise jwt.InvalidKeyError("unknown key id")
            return self._keys[kid]
        finally:
            self._lock.release()

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        """The key set, or ServiceUnavailable once JWKS_DEADLINE_SECONDS have passed: the
        download runs in a thread of its own, which stops reading at the same deadline."""
        deadline = time.monotonic() + JWKS_DEADLINE_SECONDS
        result: Future[dict[str, jwt.PyJWK]] = Future()
        threading.Thread(
            target=_download, args=(self.url, deadline, result), name="jwks", daemon=True
        ).start()
        try:
            return result.result(timeout=JWKS_DEADLINE_SECONDS)
        except FutureTimeout:
            log.error("could not fetch the issuer's JWKS (deadline)")
        except _FetchFailed as failed:
            log.error("could not fetch the issuer's JWKS (%s)", failed)
        raise _keys_unavailable()


class _FetchFailed(Exception):
    """The JWKS fetch failed; its message is the kind of failure, never the URL or a body."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an error: the keys come from the configured URL only


@lru_cache(maxsize=1)
def _opener() -> urllib.request.OpenerDirector:
    """Built on first use: its HTTPS handler loads the CA certificates (~20 ms of a cold start)."""
    return urllib.request.build_opener(_NoRedirects)


def _download(url: str, deadline: float, result: Future[dict[str, jwt.PyJWK]]) -> None:
    import jwt

    try:
        with _opener().open(url, timeout=JWKS_DEADLINE_SECONDS) as response:
            chunks: list[bytes] = []
            while chunk := response.read1(65536):  # what has arrived: a trickle cannot stall it
                chunks.append(chunk)
                if time.monotonic() > deadline or sum(map(len, chunks)) > JWKS_MAX_BYTES:
                    raise _FetchFailed("too slow or too long")
            if response.length:  # the connection closed before Content-Length bytes came
                raise _FetchFailed("cut short")
        keyset = jwt.PyJWKSet.from_dict(json.loads(b"".join(chunks)))
        result.set_result({key.key_id: key for key in keyset.keys if key.key_id})
    except _FetchFailed as failed:
        result.set_exception(failed)
    except (
        OSError,  # unreachable, TLS, an error status or a refused redirect (HTTPError)
        http.client.HTTPException,  # a body cut short (IncompleteRead), a broken status line
        ValueError,  # not JSON, not UTF-8
        TypeError,
        AttributeError,
        KeyError,
        RecursionError,
        jwt.PyJWKError,
        jwt.PyJWKSetError,
    ) as exc:
        result.set_exception(_FetchFailed(type(exc).__name__))


def _keys_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The identity provider's keys are unavailable.", retry_after=JWKS_FAILURE_SECONDS
    )


_jwks_by_url: dict[str, Jwks] = {}


def _jwks(settings: Settings) -> Jwks:
    url = settings.oidc_jwks_url or ""
    if url not in _jwks_by_url:
        _jwks_by_url[url] = Jwks(url)
    return _jwks_by_url[url]
