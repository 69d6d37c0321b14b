"""Idempotency keys: a retried send with the same key never reaches Twilio twice.

A key is scoped to its caller. The first request claims it with an insert-if-absent, so of
any number of concurrent duplicates (in any number of processes) exactly one proceeds. The
claim records the request's fingerprint and ledger reference; once the outcome is final it
records the response, which later requests with the key get back unchanged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from api import clock
from api.answers import Answer
from api.errors import FieldError, ValidationFailed
from api.storage import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    key_of,
    storage_errors,
    table,
)

TABLE = "idempotency"
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Claim:
    """Who holds a key: this request (`owned`), or an earlier one with ledger row `ref`."""

    partition: str
    row: str
    ref: str
    owned: bool
    stored: Answer | None = None


def check_key(key: str) -> str:
    if not _KEY_SHAPE.match(key):
        raise ValidationFailed(
            [FieldError("Idempotency-Key", "must be 1-255 printable ASCII characters")]
        )
    return key


def fingerprint(kind: str, canonical_body: str) -> str:
    return hashlib.sha256(f"{kind}\n{canonical_body}".encode()).hexdigest()


def claim(caller: str, key: str, *, print_: str, ref: str, ttl_hours: int) -> Claim:
    """Claim `key` for a new send with ledger `ref`, or say who holds it already.

    Raises ValidationFailed (422) when the key was used with another request body.
    """
    partition, row = key_of(caller), key_of(key)
    keys = table(TABLE)
    entity = {
        "PartitionKey": partition,
        "RowKey": row,
        "Fingerprint": print_,
        "Ref": ref,
        "Created": clock.now(),
        "Status": 0,
        "Body": "",
        "ContentType": "",
    }
    for _ in range(5):
        with storage_errors():
            try:
                keys.create_entity(entity)
                return Claim(partition, row, ref, owned=True)
            except ResourceExistsError:
                pass
            try:
                existing = keys.get_entity(partition, row)
            except ResourceNotFoundError:
                continue  # released in between: try to claim again
            if existing["Created"] + timedelta(hours=ttl_hours) < clock.now():
                _delete(partition, row, existing.metadata["etag"])
                continue
        if existing["Fingerprint"] != print_:
            raise ValidationFailed(
                [FieldError("Idempotency-Key", "was already used with a different request body")]
            )
        return Claim(partition, row, existing["Ref"], owned=False, stored=_stored(existing))
    raise ResourceModifiedError("idempotency key kept changing")


def complete(held: Claim, answer: Answer) -> None:
    """Record the final answer of the send that holds the key."""
    with storage_errors():
        table(TABLE).update_entity(
            {
                "PartitionKey": held.partition,
                "RowKey": held.row,
                "Status": answer.status,
                "Body": answer.body,
                "ContentType": answer.content_type,
            }
        )


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


def _stored(entity: dict[str, object]) -> Answer | None:
    status = int(entity.get("Status") or 0)  # type: ignore[call-overload]
    if not status:
        return None
    return Answer(status, str(entity["Body"]), str(entity["ContentType"]), replayed=True)
