"""Idempotency keys: a retried send with the same key never reaches Twilio twice.

A key is scoped to its caller. The send's ledger row is the key's claim: its reference is made
from the key (`<caller partition><12 hex digits of a hash of caller and key><generation>`) and
it is written with an insert-if-absent, so of any number of concurrent duplicates (in any
number of processes) exactly one proceeds, with a single-entity write. The row records the
key's full hash and the request's fingerprint; once the outcome is final it records the
answer, which later requests with the key get back unchanged.

A key is honoured for IDEMPOTENCY_TTL_HOURS, and freed early when its send never reached
Twilio (the row is `released`); a request with a key whose latest row is past that takes the
next generation, a new row, while the old one stays in the ledger for RETENTION_DAYS.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from api.core import clock
from api.core.errors import FieldError, ValidationFailed
from api.stores import ledger
from api.stores.storage import ResourceExistsError, ResourceModifiedError, key_of

_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")
HASH_CHARS = 12  # of the key's hash in a reference; the row keeps the whole hash
GENERATION_CHARS = 4


@dataclass(frozen=True)
class Key:
    """An Idempotency-Key as one request uses it: whose, which, for what body, for how long."""

    caller: str
    value: str
    print_: str  # the request's fingerprint
    ttl_hours: int

    @property
    def hash(self) -> str:
        return key_of(f"{self.caller}\n{self.value}")

    @property
    def stem(self) -> str:
        """What every reference of this key starts with."""
        return ledger.caller_partition(self.caller) + self.hash[:HASH_CHARS]

    def ref(self, generation: int) -> str:
        return f"{self.stem}{generation:0{GENERATION_CHARS}x}"


@dataclass(frozen=True)
class Claim:
    """Who holds a key: this request (`owned`), or an earlier one with ledger row `ref`."""

    ref: str
    owned: bool


def check_key(key: str) -> str:
    if not _KEY_SHAPE.match(key):
        raise ValidationFailed(
            [FieldError("Idempotency-Key", "must be 1-255 printable ASCII characters")]
        )
    return key


def fingerprint(kind: str, canonical_body: str) -> str:
    return hashlib.sha256(f"{kind}\n{canonical_body}".encode()).hexdigest()


def claim(key: Key, row: ledger.Row) -> Claim:
    """Claim `key` by writing the send's ledger `row` as the key's, or say who holds the key.

    Sets the row's reference. Raises ValidationFailed (422) when the key was used with another
    request body.
    """
    row.key_hash, row.key, row.fingerprint = key.hash, key.value, key.print_
    generation = 0
    for _ in range(5):
        row.ref = key.ref(generation)
        try:
            ledger.insert(row)
            return Claim(row.ref, owned=True)
        except ResourceExistsError:
            pass
        # Taken: by this key (held, or free again), or by another key whose hash begins alike.
        rows = ledger.query(
            ledger.partition_of(row.ref),
            ledger.SEND + key.stem,
            ledger.SEND + key.ref(16**GENERATION_CHARS - 1),
        )
        generation = 1 + max((int(r.ref[-GENERATION_CHARS:], 16) for r in rows), default=-1)
        latest = next((r for r in reversed(rows) if r.key_hash == key.hash), None)
        if latest is None or latest.released:
            continue
        if latest.created + timedelta(hours=key.ttl_hours) < clock.now():
            continue
        if latest.fingerprint != key.print_:
            raise ValidationFailed(
                [FieldError("Idempotency-Key", "was already used with a different request body")]
            )
        return Claim(latest.ref, owned=False)
    raise ResourceModifiedError("idempotency key kept changing")
