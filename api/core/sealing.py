"""Sealing: call-flow parameters that travel in a URL, unreadable and unalterable.

makeCall seals the Twimlets parameters of the call, the caller's id and an expiry with
AES-GCM under AHOY_FLOW_KEY; /api/twiml unseals them. A URL therefore carries no message
text and no number, and nobody without the key can make or change one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_CONTEXT = b"ahoy-flow-v1"
_NONCE_BYTES = 12


class SealRejected(Exception):
    """The seal is expired, altered, or was made under another key."""


@dataclass(frozen=True)
class SealedFlow:
    """What a seal holds: Twimlets parameters in order, who asked for them, when it expires."""

    params: tuple[tuple[str, str], ...]
    caller: str
    expires_at: int


def seal(params: list[tuple[str, str]], *, caller: str, ttl_seconds: int, key: bytes) -> str:
    payload = json.dumps(  # UTF-8, not \u escapes: a sealed URL stays as short as it can
        {"p": params, "c": caller, "x": int(time.time()) + ttl_seconds},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _cipher(key).encrypt(nonce, payload, _CONTEXT)
    return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()


@lru_cache(maxsize=4)
def _cipher(key: bytes) -> AESGCM:
    return AESGCM(key)


def unseal(token: str, *, key: bytes, now: float | None = None) -> SealedFlow:
    """Open a seal, or raise SealRejected without saying more than that."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        plain = _cipher(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _CONTEXT)
        payload = json.loads(plain.decode())  # sealed as UTF-8; bytes would make json guess
        flow = SealedFlow(
            params=tuple((str(name), str(value)) for name, value in payload["p"]),
            caller=str(payload["c"]),
            expires_at=int(payload["x"]),
        )
    except (binascii.Error, ValueError, InvalidTag, KeyError, TypeError) as exc:
        raise SealRejected("altered or foreign") from exc
    if flow.expires_at < (time.time() if now is None else now):
        raise SealRejected("expired")
    return flow
