"""Short-lived signed links to recordings, for players that cannot send a token.

A link names the recording and its expiry, nothing else, and carries an HMAC-SHA256 over both.
The HMAC's key is its own: derived from AHOY_FLOW_KEY with HKDF under a label of its own, so a
link's key opens no flow and a flow's key signs no link. Checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_LABEL = b"ahoy recording links v1"


@lru_cache(maxsize=4)
def link_key(flow_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(flow_key)


def signature(sid: str, expires: int, flow_key: bytes) -> str:
    message = f"{sid}\n{expires}".encode()
    return hmac.new(link_key(flow_key), message, hashlib.sha256).hexdigest()


def is_valid(sid: str, expires: str, given: str, flow_key: bytes, now: float) -> bool:
    """True for a link Ahoy signed for `sid` that has not expired."""
    if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        return False
    expected = signature(sid, int(expires), flow_key)
    return hmac.compare_digest(expected.encode(), given.encode()) and int(expires) >= now
