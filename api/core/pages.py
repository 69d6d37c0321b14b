"""Page tokens: Table Storage's continuation (the next partition and row keys), as one opaque
URL-safe string, and back. A token is only ever a position: every query that takes one
filters on what its caller may read, so a crafted token reaches nothing more."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from api.core.errors import FieldError, ValidationFailed


def encode(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def decode(token: str | None) -> dict[str, str] | None:
    """A token `encode` made: the next partition and row keys, nothing else (422 otherwise)."""
    if not token:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, RecursionError):
        decoded = None
    if (
        isinstance(decoded, dict)
        and decoded
        and set(decoded) <= {"PartitionKey", "RowKey"}
        and all(isinstance(v, str) and len(v) <= 1024 for v in decoded.values())
    ):
        return decoded
    raise ValidationFailed([FieldError("continuation", "is not a page token")])
