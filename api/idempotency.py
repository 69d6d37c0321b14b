"""Idempotency keys: a retried send with the same key never reaches Twilio twice.

A key is scoped to its caller. The first request claims it with an insert-if-absent, so of
any number of concurrent duplicates (in any number of processes) exactly one proceeds. The
claim records the request's fingerprint and ledger reference; the send's ledger row records
its answer once final, which later requests with the key get back unchanged.

Claims live in the caller's ledger partition (`key-<hash of caller and key>`): the claim, the
send's ledger row and the caller's counters are written in one transaction.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from api import clock, ledger
from api.errors import FieldError, RateLimited, ValidationFailed
from api.storage import (
    ResourceModifiedError,
    ResourceNotFoundError,
    TableTransactionError,
    key_of,
    storage_errors,
    table,
)

TABLE = ledger.TABLE
KEY = "key-"  # row key prefix of a claim
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Key:
    """An Idempotency-Key as one request uses it: whose, which, for what body, for how long."""

    caller: str
    value: str
    print_: str  # the request's fingerprint
    ttl_hours: int

    @property
    def partition(self) -> str:
        return ledger.caller_partition(self.caller)

    @property
    def row(self) -> str:
        return KEY + key_of(f"{self.caller}\n{self.value}")


@dataclass(frozen=True)
class Claim:
    """Who holds a key: this request (`owned`), or an earlier one with ledger row `ref`.

    `etag` is the stored claim's, when this request wrote or read it.
    """

    partition: str
    row: str
    ref: str
    owned: bool
    etag: str | None = None


def check_key(key: str) -> str:
    if not _KEY_SHAPE.match(key):
        raise ValidationFailed(
            [FieldError("Idempotency-Key", "must be 1-255 printable ASCII characters")]
        )
    return key


def fingerprint(kind: str, canonical_body: str) -> str:
    return hashlib.sha256(f"{kind}\n{canonical_body}".encode()).hexdigest()


def claim(key: Key, row: ledger.Row, count: ledger.Count | None = None) -> Claim:
    """Claim `key` and write the send's ledger `row` with it (and the caller's counters that
    `count` adds: see ledger.write_counted), or say who holds the key.

    Raises ValidationFailed (422) when the key was used with another request body, and
    RateLimited when a counter is full, unless an earlier request holds the key: its answer
    wins.
    """
    keys = table(TABLE)
    entity = {
        "PartitionKey": key.partition,
        "RowKey": key.row,
        "Fingerprint": key.print_,
        "Ref": row.ref,
        "Created": clock.now(),
    }
    for _ in range(5):
        refused: RateLimited | None = None
        try:
            with storage_errors():
                written = ledger.write_counted(
                    [("create", entity), ledger.insert_operation(row)], count
                )
            row.etag = written[1].get("etag")
            return Claim(key.partition, key.row, row.ref, owned=True, etag=written[0].get("etag"))
        except TableTransactionError as failed:
            if (failed.status_code, failed.index) != (409, 0):
                raise
        except RateLimited as limited:
            refused = limited
        with storage_errors():
            try:
                existing = keys.get_entity(key.partition, key.row)
            except ResourceNotFoundError:
                if refused is not None:
                    raise refused from None
                continue  # released in between: try to claim again
            if existing["Ref"] == row.ref:
                # Ours: the write landed, its answer was lost and the SDK sent it again.
                row.etag = keys.get_entity(key.partition, ledger.SEND + row.ref).metadata["etag"]
                return Claim(
                    key.partition, key.row, row.ref, owned=True, etag=existing.metadata["etag"]
                )
            if existing["Created"] + timedelta(hours=key.ttl_hours) < clock.now():
                _delete(key.partition, key.row, existing.metadata["etag"])
                continue
        if existing["Fingerprint"] != key.print_:
            raise ValidationFailed(
                [FieldError("Idempotency-Key", "was already used with a different request body")]
            )
        return Claim(key.partition, key.row, existing["Ref"], owned=False)
    raise ResourceModifiedError("idempotency key kept changing")


def find(key: Key, ref: str) -> Claim | None:
    """The stored claim of `key` if send `ref` holds it (with its ETag), else None."""
    with storage_errors():
        try:
            existing = table(TABLE).get_entity(key.partition, key.row)
        except ResourceNotFoundError:
            return None
    if existing["Ref"] != ref:
        return None
    return Claim(key.partition, key.row, ref, owned=True, etag=existing.metadata["etag"])


def release_operation(held: Claim) -> ledger.Operation:
    """The transaction step that gives the key back, if this request's claim is still there."""
    from azure.core import MatchConditions

    entity = {"PartitionKey": held.partition, "RowKey": held.row}
    if held.etag is None:
        return ("delete", entity)
    return ("delete", entity, {"etag": held.etag, "match_condition": MatchConditions.IfNotModified})


def release(held: Claim) -> None:
    """Give the key back: nothing was sent, so a retry with it may send."""
    with storage_errors():
        _delete(held.partition, held.row, None)


def _delete(partition: str, row: str, etag: str | None) -> None:
    from azure.core import MatchConditions

    keys = table(TABLE)
    try:
        if etag is None:
            keys.delete_entity(partition, row)
        else:
            keys.delete_entity(
                partition, row, etag=etag, match_condition=MatchConditions.IfNotModified
            )
    except (ResourceNotFoundError, ResourceModifiedError):
        pass
