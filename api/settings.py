"""Typed app settings, read from the environment (Azure app settings) once, on first use.

Pydantic stays out of this module on purpose: the TwiML webhook needs settings on a cold
start, and pydantic's import and model build cost more than Twilio's patience allows.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from api.errors import ConfigurationError

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("

T = TypeVar("T")
V = TypeVar("V", str, bytes)


class Secret(Generic[V]):
    """A value that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)
    _value: V

    def __init__(self, value: V) -> None:
        self._value = value

    def get(self) -> V:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    """Everything Ahoy reads from its app settings. Names match the settings table in README."""

    twilio_account_sid: str
    twilio_auth_token: Secret[str]
    twilio_api_key_sid: str | None
    twilio_api_key_secret: Secret[str] | None
    twilio_from_number: str
    twilio_messaging_service_sid: str | None
    twilio_api_base_url: str | None
    public_base_url: str
    flow_key: Secret[bytes]
    flow_ttl_seconds: int
    allowed_twiml_hosts: frozenset[str]

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_base_url).hostname or ""

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from `env`; raise ConfigurationError naming every bad setting."""
        reader = _Reader(env)
        settings = cls(
            twilio_account_sid=reader.required("TWILIO_ACCOUNT_SID", _account_sid),
            twilio_auth_token=reader.required("TWILIO_AUTH_TOKEN", Secret[str]),
            twilio_api_key_sid=reader.optional("TWILIO_API_KEY_SID", _api_key_sid),
            twilio_api_key_secret=reader.optional("TWILIO_API_KEY_SECRET", Secret[str]),
            twilio_from_number=reader.required("TWILIO_FROM_NUMBER", _e164),
            twilio_messaging_service_sid=reader.optional(
                "TWILIO_MESSAGING_SERVICE_SID", _messaging_service_sid
            ),
            twilio_api_base_url=reader.optional("TWILIO_API_BASE_URL", _origin),
            public_base_url=reader.required("PUBLIC_BASE_URL", _origin),
            flow_key=reader.required("AHOY_FLOW_KEY", _flow_key),
            flow_ttl_seconds=reader.optional("FLOW_TTL_SECONDS", _int_between(60, 86_400)) or 900,
            allowed_twiml_hosts=reader.optional("ALLOWED_TWIML_HOSTS", _host_list) or frozenset(),
        )
        if (settings.twilio_api_key_sid is None) != (settings.twilio_api_key_secret is None):
            reader.bad.extend(["TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET"])
        if reader.bad:
            raise ConfigurationError.missing(sorted(set(reader.bad)))
        return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built on first use (never at import: that would un-index the app)."""
    return Settings.from_environ(os.environ)


class _Reader:
    """Reads settings, collecting the names of the missing or invalid ones instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.bad: list[str] = []

    def optional(self, name: str, parse: Callable[[str], T]) -> T | None:
        raw = self.env.get(name, "").strip()
        if not raw:
            return None
        if raw.startswith(KEY_VAULT_REFERENCE):  # Azure could not resolve the reference
            self.bad.append(name)
            return None
        try:
            return parse(raw)
        except ValueError:
            self.bad.append(name)
            return None

    def required(self, name: str, parse: Callable[[str], T]) -> T:
        value = self.optional(name, parse)
        if value is None and name not in self.bad:
            self.bad.append(name)
        return value  # type: ignore[return-value]  # callers raise before using a None


def _matching(pattern: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(raw: str) -> str:
        if not compiled.fullmatch(raw):
            raise ValueError
        return raw

    return parse


_account_sid = _matching(r"AC[0-9a-fA-F]{32}")
_api_key_sid = _matching(r"SK[0-9a-fA-F]{32}")
_messaging_service_sid = _matching(r"MG[0-9a-fA-F]{32}")
_e164 = _matching(E164.pattern[1:-1])


def _origin(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError
    return raw.rstrip("/")


def _flow_key(raw: str) -> Secret[bytes]:
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError from exc
    if len(key) != 32:
        raise ValueError
    return Secret(key)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError
        return value

    return parse


def _host_list(raw: str) -> frozenset[str]:
    return frozenset(host.strip().lower() for host in raw.split(",") if host.strip())
