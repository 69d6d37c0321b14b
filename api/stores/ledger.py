"""The ledger: one row per accepted send, written before Twilio is asked, kept up to date after.

Row states: `pending` (written, Twilio not yet answered), `sent` (Twilio has a SID),
`failed` (Twilio refused or was never reached), `unknown` (Twilio's answer never arrived).
A send that a limit or storage stopped before Twilio was asked leaves no row. Status
callbacks add Twilio's own statuses to `history` and move `status` forward only (they arrive
retried and out of order).

Layout (table `ledger`): one partition per caller (the first 16 hex digits of a hash of the
caller id):
- `send-<ref>`: a send's row, with the answer the send gave; for a send with an
  Idempotency-Key, also the key's claim (see `api.stores.idempotency`);
- `sid-<SID>`: Twilio's SID → the row, for GET by SID;
- `list-<kind>-<13 digits counting down from the row's creation>-<ref>`: the row as the
  caller's history shows it (GET /api/messages, /api/calls), newest first by key;
- `head-<kind>`: rewritten with every change to that kind's rows: its ETag is the history's.
A row's reference starts with its partition, so a status callback, which carries only the
reference, finds it in one read.

Every write of a row is one entity-group transaction with its history item and its head, so
the history is never behind the row. A send writes twice: before Twilio (an insert) and after
(an update, carrying the answer replayed for the key). The SID index is written by the first
status callback, with the row; until then GET by SID finds the row by a query of the caller's
partition.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from api.core import clock
from api.core.answers import Answer
from api.core.settings import Settings
from api.stores.storage import (
    Expiry,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    TableTransactionError,
    key_of,
    odata_time,
    row_key_prefix,
    storage_errors,
    table,
)

# A step of an entity-group transaction, as azure-data-tables takes it.
Operation = tuple[Any, ...]

TABLE = "ledger"
SEND = "send-"  # row key prefix of a send's row
SID_INDEX = "sid-"  # row key prefix of the SID index
LISTING = "list-"  # row key prefix of the history
HEAD = "head-"  # row key prefix of the history's heads (one per kind)
PARTITION_CHARS = 16

# Twilio's statuses by progress; a terminal status is final, except that `read` follows
# `delivered`. Unknown statuses rank 0 and never move a row.
_MESSAGE_RANK = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}
_CALL_RANK = {
    "queued": 1,
    "initiated": 2,
    "ringing": 3,
    "in-progress": 4,
    "completed": 5,
    "busy": 5,
    "no-answer": 5,
    "failed": 5,
    "canceled": 5,
}
_TERMINAL = {"sms": 4, "call": 5}
MESSAGE_STATUSES = frozenset(_MESSAGE_RANK)
CALL_STATUSES = frozenset(_CALL_RANK)
_SID_SHAPE = re.compile(r"^(SM|MM|CA)[0-9a-f]{32}$")


@dataclass
class Row:
    """A ledger row (one accepted send)."""

    ref: str
    caller: str
    kind: str  # "sms" | "call"
    to: str
    from_: str | None
    created: datetime
    state: str = "pending"
    sid: str | None = None
    status: str | None = None
    error_code: int | None = None
    body_hash: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    answer: Answer | None = None  # what the send answered: replayed for its Idempotency-Key
    indexed: bool = False  # its SID index row is written
    key_hash: str | None = None  # its Idempotency-Key's (api.stores.idempotency)
    key: str | None = None  # the Idempotency-Key itself: the caller finds the send by it
    fingerprint: str | None = None  # of the request that claimed the key
    released: bool = False  # never sent: its key is free again
    attempt: str = field(default_factory=lambda: secrets.token_hex(8))  # the request's own
    etag: str | None = None

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": partition_of(self.ref),
            "RowKey": SEND + self.ref,
            "Caller": self.caller,
            "Kind": self.kind,
            "To": self.to,
            "From": self.from_ or "",
            "Created": self.created,
            "State": self.state,
            "Sid": self.sid or "",
            "Status": self.status or "",
            "ErrorCode": self.error_code or 0,
            "BodyHash": self.body_hash or "",
            "History": json.dumps(self.history, separators=(",", ":")),
            "AnswerStatus": self.answer.status if self.answer else 0,
            "AnswerBody": self.answer.body if self.answer else "",
            "AnswerType": self.answer.content_type if self.answer else "",
            "Indexed": self.indexed,
            "KeyHash": self.key_hash or "",
            "Key": self.key or "",
            "Fingerprint": self.fingerprint or "",
            "Released": self.released,
            "Attempt": self.attempt,
        }

    @classmethod
    def from_entity(cls, entity: Any) -> Row:
        return cls(
            ref=entity["RowKey"].removeprefix(SEND),
            caller=entity["Caller"],
            kind=entity["Kind"],
            to=entity["To"],
            from_=entity.get("From") or None,
            created=entity["Created"],
            state=entity["State"],
            sid=entity.get("Sid") or None,
            status=entity.get("Status") or None,
            error_code=entity.get("ErrorCode") or None,
            body_hash=entity.get("BodyHash") or None,
            history=json.loads(entity.get("History") or "[]"),
            answer=(
                Answer(entity["AnswerStatus"], entity["AnswerBody"], entity["AnswerType"])
                if entity.get("AnswerStatus")
                else None
            ),
            indexed=bool(entity.get("Indexed")),
            key_hash=entity.get("KeyHash") or None,
            key=entity.get("Key") or None,
            fingerprint=entity.get("Fingerprint") or None,
            released=bool(entity.get("Released")),
            attempt=entity.get("Attempt") or "",
            etag=entity.metadata.get("etag"),
        )


def expiries(now: datetime, settings: Settings) -> list[Expiry]:
    """What the ledger keeps for RETENTION_DAYS: sends (an Idempotency-Key's claim is its
    send's row: it goes with it), their SID index and history items. Heads stay: one small
    row per caller and kind."""
    cutoff = odata_time(now - timedelta(days=settings.retention_days))
    return [
        Expiry(name, TABLE, f"{row_key_prefix(prefix)} and Created lt {cutoff}")
        for name, prefix in (
            ("ledger rows", SEND),
            ("SID index rows", SID_INDEX),
            ("history items", LISTING),
        )
    ]


def caller_partition(caller: str) -> str:
    """The partition of everything a caller's sends write (rows, SID index, keys)."""
    return key_of(caller)[:PARTITION_CHARS]


def partition_of(ref: str) -> str:
    return ref[:PARTITION_CHARS]


def new_row(
    caller: str, kind: str, to: str, from_: str | None, *, body_hash: str | None = None
) -> Row:
    """A new `pending` row for one send, with a fresh reference, created now."""
    return Row(
        ref=caller_partition(caller) + secrets.token_hex(8),
        caller=caller,
        kind=kind,
        to=to,
        from_=from_,
        created=clock.now(),
        body_hash=body_hash,
    )


def insert(row: Row) -> None:
    """Write a new row (with its history item); ResourceExistsError if its reference is taken
    (by another send: one that landed for this very request, its answer lost and the SDK
    sending it again, is taken as written). Its ETag is kept, so the next update needs no
    read first."""
    with storage_errors():
        try:
            written = table(TABLE).submit_transaction(
                [("create", row.to_entity()), *_projection(row)]
            )
            row.etag = written[0].get("etag")
            return
        except TableTransactionError as failed:
            if failed.status_code != 409 or failed.index != 0:
                raise
        there = get(row.ref)
        if there is None or there.attempt != row.attempt:
            raise ResourceExistsError("ledger reference taken")
    row.etag = there.etag


def delete(row: Row) -> bool:
    """Delete `row` (and its history item) if it is as it was read (its ETag); False if it
    changed since or is gone already."""
    steps: list[Operation] = [
        ("delete", _keys(row.ref, SEND + row.ref), _unchanged(row)),
        ("delete", _keys(row.ref, listing_key(row))),
        _head(row),
    ]
    with storage_errors():
        try:
            table(TABLE).submit_transaction(steps)
        except TableTransactionError as failed:
            if failed.status_code == 404 and failed.index == 1:  # a row older than the history
                return delete_alone(row)
            if failed.status_code in (404, 412) and failed.index == 0:
                return False
            raise
    return True


def delete_alone(row: Row) -> bool:
    """Delete a row that has no history item (written before the history was kept)."""
    with storage_errors():
        try:
            table(TABLE).submit_transaction(
                [("delete", _keys(row.ref, SEND + row.ref), _unchanged(row)), _head(row)]
            )
        except TableTransactionError as failed:
            if failed.status_code in (404, 412) and failed.index == 0:
                return False
            raise
    return True


def withdraw(row: Row) -> None:
    """Delete the row this request inserted, if it landed (its write may have failed, and its
    reference be a key's, which another request may hold by now)."""
    there = get(row.ref)
    if there is not None and there.attempt == row.attempt:
        delete(there)


def query(partition: str, first: str, last: str, *, sid: str | None = None) -> list[Row]:
    """The send rows of `partition` whose row keys are from `first` to before `last` (and
    whose SID is `sid`, when given)."""
    where = "PartitionKey eq @partition and RowKey ge @first and RowKey lt @last"
    parameters = {"partition": partition, "first": first, "last": last}
    if sid is not None:
        where, parameters["sid"] = f"{where} and Sid eq @sid", sid
    with storage_errors():
        found = table(TABLE).query_entities(where, parameters=parameters)
        return [Row.from_entity(entity) for entity in found]


def get(ref: str) -> Row | None:
    with storage_errors():
        try:
            return Row.from_entity(table(TABLE).get_entity(partition_of(ref), SEND + ref))
        except ResourceNotFoundError:
            return None


def find_by_sid(caller: str, sid: str) -> Row | None:
    """The caller's row for Twilio's `sid`; None if this caller has none.

    By the SID index; a send whose first status callback has not come yet is not indexed,
    and is found by a query of the caller's partition (only for a SID of Twilio's shape).
    """
    if not _SID_SHAPE.match(sid):
        return None
    partition = caller_partition(caller)
    with storage_errors():
        try:
            index = table(TABLE).get_entity(partition, SID_INDEX + sid)
        except ResourceNotFoundError:
            return next(iter(query(partition, SEND, "send.", sid=sid)), None)
    return get(index["Ref"])


def update(
    ref: str,
    change: Callable[[Row], None],
    known: Row | None = None,
    also: Callable[[Row], list[Operation]] | None = None,
) -> Row | None:
    """Apply `change` to the row and write it, re-reading when another writer got there first.

    `known` is the row as this process last wrote it: tried first, it saves a read. `also`
    gives further steps in the row's partition that are written with it, all or none. A
    change that changes nothing writes nothing: repeated callbacks are free and never contend.
    """
    for attempt in range(100):
        row, known = known or get(ref), None
        if row is None:
            return None
        before = row.to_entity()
        change(row)
        if row.to_entity() == before:
            return row
        try:
            save(row, also(row) if also else [])
        except ResourceModifiedError:
            time.sleep(random.uniform(0, 0.002 * min(attempt, 10)))  # noqa: S311  # jitter
            continue
        return row
    raise ResourceModifiedError("ledger row kept changing")


def save(row: Row, also: list[Operation] | None = None) -> None:
    """Write `row` back (with `also`, in one transaction); ResourceModifiedError if someone
    else wrote the row since it was read."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    conditions: dict[str, Any] = {
        "mode": UpdateMode.REPLACE,
        "etag": row.etag,
        "match_condition": MatchConditions.IfNotModified,
    }
    with storage_errors():
        try:
            written = table(TABLE).submit_transaction(
                [("update", row.to_entity(), conditions), *_projection(row), *(also or [])]
            )
        except TableTransactionError as failed:
            if failed.status_code == 412 and failed.index == 0:
                raise ResourceModifiedError("ledger row changed") from None
            raise
    row.etag = written[0].get("etag")


def sid_index_operation(row: Row, sid: str) -> Operation:
    """The step that indexes the row by Twilio's `sid` (GET /api/messages/{sid})."""
    entity = {
        "PartitionKey": partition_of(row.ref),
        "RowKey": SID_INDEX + sid,
        "Ref": row.ref,
        "Created": row.created,  # retention deletes it with its row
    }
    return ("upsert", entity)


def record_status(
    ref: str,
    *,
    sid: str,
    status: str,
    sequence: int | None = None,
    error_code: int | None = None,
    known: Row | None = None,
    answer: Answer | None = None,
    index: bool = True,
) -> Row | None:
    """Add Twilio's word on a send (its answer or a callback): idempotent, never backwards.

    `answer` is what the send answers, kept unless one is already. With `index`, the SID
    index is written with the row, the first time only (one transaction); without, the row
    alone is written (one update: the send's own write after Twilio).
    """
    indexing = False

    def change(row: Row) -> None:
        nonlocal indexing
        indexing = False
        if row.sid and row.sid != sid:
            return  # about another resource: not this row's to change
        _apply_status(row, sid=sid, status=status, sequence=sequence, error_code=error_code)
        if answer is not None and row.answer is None:
            row.answer = answer
        if index and not row.indexed:
            row.indexed = indexing = True

    def with_row(row: Row) -> list[Operation]:
        return [sid_index_operation(row, sid)] if indexing else []

    return update(ref, change, known, with_row)


def set_state(
    ref: str,
    state: str,
    error_code: int | None = None,
    answer: Answer | None = None,
    *,
    release: bool = False,
) -> None:
    """Record how a send ended on Ahoy's side: failed or unknown (with its `answer`, when
    final; with `release`, never sent, so its Idempotency-Key is free again)."""

    def change(row: Row) -> None:
        if row.state in ("pending", "unknown"):  # a callback may already have said "sent"
            row.state = state
            row.error_code = error_code or row.error_code
            row.answer = row.answer or answer
            row.released = release

    update(ref, change)


def listing_key(row: Row) -> str:
    """The row key of `row`'s history item: by kind, newest first, then by reference."""
    counting_down = 10**13 - int(row.created.timestamp() * 1000)
    return f"{LISTING}{row.kind}-{counting_down:013d}-{row.ref}"


def head_etag(caller: str, kind: str) -> str | None:
    """The ETag of the caller's head for `kind`: it changes whenever any of those rows does
    (None before the first send)."""
    with storage_errors():
        try:
            head = table(TABLE).get_entity(caller_partition(caller), HEAD + kind, select=["At"])
        except ResourceNotFoundError:
            return None
    etag: str | None = head.metadata.get("etag")
    return etag


def listing(
    caller: str,
    kind: str,
    *,
    states: list[str],
    since: datetime | None,
    page_size: int,
    continuation: dict[str, str] | None,
) -> tuple[list[Any], dict[str, str] | None]:
    """One page of the caller's history items of `kind`, newest first, and the token of the
    next page. With `states`, only items whose Twilio status is one of them, or, for a send
    Twilio never answered, whose state is; with `since`, only those created at or after it.
    Only the caller's partition is read, whatever the token says."""
    where = [
        "PartitionKey eq @partition",
        "RowKey ge @first",
        "RowKey lt @last",
    ]
    parameters: dict[str, Any] = {
        "partition": caller_partition(caller),
        "first": f"{LISTING}{kind}-",
        "last": f"{LISTING}{kind}.",
    }
    if since is not None:
        where.append("Created ge @since")
        parameters["since"] = since
    if states:
        either = []
        for n, state in enumerate(states):
            either.append(f"Status eq @s{n} or ( Status eq '' and State eq @s{n} )")
            parameters[f"s{n}"] = state
        where.append(f"( {' or '.join(either)} )")  # the SDK substitutes space-separated words
    start: Any = continuation  # the SDK's tokens are dicts, typed as str
    with storage_errors():
        pages: Any = (
            table(TABLE)
            .query_entities(" and ".join(where), parameters=parameters, results_per_page=page_size)
            .by_page(continuation_token=start)
        )
        items = list(next(pages, []))
        return items, pages.continuation_token


def _projection(row: Row) -> list[Operation]:
    """The steps that keep the row's history item and head as the row is."""
    from azure.data.tables import UpdateMode

    item = {
        "PartitionKey": partition_of(row.ref),
        "RowKey": listing_key(row),
        "Ref": row.ref,
        "Kind": row.kind,
        "To": row.to,
        "From": row.from_ or "",
        "Created": row.created,
        "State": row.state,
        "Sid": row.sid or "",
        "Status": row.status or "",
        "ErrorCode": row.error_code or 0,
        "History": json.dumps(row.history, separators=(",", ":")),
        "Key": row.key or "",
    }
    return [("upsert", item, {"mode": UpdateMode.REPLACE}), _head(row)]


def _head(row: Row) -> Operation:
    from azure.data.tables import UpdateMode

    head = {"PartitionKey": partition_of(row.ref), "RowKey": HEAD + row.kind, "At": clock.now()}
    return ("upsert", head, {"mode": UpdateMode.REPLACE})


def _keys(ref: str, row_key: str) -> dict[str, str]:
    return {"PartitionKey": partition_of(ref), "RowKey": row_key}


def _unchanged(row: Row) -> dict[str, Any]:
    from azure.core import MatchConditions

    return {"etag": row.etag, "match_condition": MatchConditions.IfNotModified}


def _apply_status(
    row: Row, *, sid: str, status: str, sequence: int | None, error_code: int | None
) -> None:
    ranks = _MESSAGE_RANK if row.kind == "sms" else _CALL_RANK
    row.sid = sid
    if row.state in ("pending", "unknown"):
        row.state = "sent"  # Twilio has it: its first callback links the SID to the row
    if not any(entry["status"] == status for entry in row.history):
        row.history.append({"status": status, "at": _now_iso(), "seq": sequence})
        # Calls' callbacks carry SequenceNumber; Twilio's first answer (queued) carries none.
        row.history.sort(key=lambda entry: -1 if entry.get("seq") is None else entry["seq"])
    current = ranks.get(row.status or "", 0)
    new = ranks.get(status, 0)
    terminal = current >= _TERMINAL[row.kind]
    if new > current and (not terminal or (row.status, status) == ("delivered", "read")):
        row.status = status
        if error_code:
            row.error_code = error_code


def _now_iso() -> str:
    return clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
