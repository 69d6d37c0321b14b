"""The caller's own history: GET /api/messages and /api/calls, and one item by SID.

Items come from the ledger's history (see `api.stores.ledger`), newest first, in pages. Each answer
carries an ETag made from the ledger's head for that kind (rewritten with every change to the
caller's rows of that kind) and the query: a poll with If-None-Match reads that one row and,
when nothing changed, is answered 304 with nothing else read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.core import pages
from api.core.delivery_errors import explain
from api.core.errors import FieldError, NotFound, ValidationFailed
from api.core.models import DeliveryError, Record, RecordPage, StatusChange
from api.stores import ledger

# What `status` may name: Twilio's statuses of that kind, and Ahoy's own states.
STATES = {
    "sms": frozenset({*ledger.MESSAGE_STATUSES, "pending", "failed", "unknown"}),
    "call": frozenset({*ledger.CALL_STATUSES, "pending", "failed", "unknown"}),
}
MAX_STATES = 5  # Table Storage takes at most 15 comparisons in a filter


@dataclass(frozen=True)
class Query:
    """What a history request asks for."""

    states: list[str]
    since: datetime | None
    page_size: int
    continuation: str | None


@dataclass(frozen=True)
class Listing:
    """A page with its ETag; no page when the caller's copy (If-None-Match) is current."""

    etag: str
    page: RecordPage | None


def parse_query(
    kind: str, params: Mapping[str, str], page_size: int, continuation: str | None
) -> Query:
    """`status` (comma-separated, at most 5) and `since` (RFC 3339 with an offset): 422 when
    malformed."""
    errors = []
    states = [s.strip() for s in params.get("status", "").split(",") if s.strip()]
    unknown = sorted(set(states) - STATES[kind])
    if unknown or len(states) > MAX_STATES:
        allowed = ", ".join(sorted(STATES[kind]))
        errors.append(FieldError("status", f"takes at most {MAX_STATES} of: {allowed}"))
    since = None
    if params.get("since"):
        try:
            since = datetime.fromisoformat(params["since"])
        except ValueError:
            since = None
        if since is None or since.tzinfo is None:
            errors.append(FieldError("since", "must be an RFC 3339 time with an offset"))
    pages.decode(continuation)  # 422 before any storage is read
    if errors:
        raise ValidationFailed(errors)
    return Query(states, since, page_size, continuation)


def list_records(caller: str, kind: str, query: Query, if_none_match: Sequence[str]) -> Listing:
    """The caller's page of `kind` (newest first), or no page when `if_none_match` names
    the current ETag."""
    etag = _etag(ledger.head_etag(caller, kind), kind, query)
    if etag in if_none_match or "*" in if_none_match:
        return Listing(etag, None)
    items, token = ledger.listing(
        caller,
        kind,
        states=query.states,
        since=query.since,
        page_size=query.page_size,
        continuation=pages.decode(query.continuation),
    )
    page = RecordPage(items=[_record(item) for item in items], next=pages.encode(token))
    return Listing(etag, page)


def get_record(caller: str, kind: str, sid: str) -> Record:
    """The caller's own message or call; anyone else's is as good as absent (404)."""
    row = ledger.find_by_sid(caller, sid)
    if row is None or row.kind != kind or row.caller != caller:
        raise NotFound(f"No {'message' if kind == 'sms' else 'call'} {sid} of yours.")
    return Record(
        sid=sid,
        status=row.status,
        state=row.state,
        error_code=row.error_code,
        error=_explained(row.error_code),
        to=row.to,
        from_=row.from_,
        date_created=row.created,
        history=[StatusChange(status=h["status"], at=h["at"]) for h in row.history],
        idempotency_key=row.key,
    )


def _record(item: Mapping[str, Any]) -> Record:
    return Record(
        sid=item.get("Sid") or None,
        status=item.get("Status") or None,
        state=item["State"],
        error_code=item.get("ErrorCode") or None,
        error=_explained(item.get("ErrorCode") or None),
        to=item["To"],
        from_=item.get("From") or None,
        date_created=item["Created"],
        history=[
            StatusChange(status=h["status"], at=h["at"])
            for h in json.loads(item.get("History") or "[]")
        ],
        idempotency_key=item.get("Key") or None,
    )


def _explained(code: int | None) -> DeliveryError | None:
    explained = explain(code)
    if explained is None:
        return None
    return DeliveryError(code=explained.code, title=explained.title, retryable=explained.retryable)


def _etag(head: str | None, kind: str, query: Query) -> str:
    """A weak ETag: the head's ETag and everything that chooses the page."""
    chosen = json.dumps(
        [
            head,
            kind,
            query.states,
            query.since and query.since.isoformat(),
            query.page_size,
            query.continuation,
        ]
    )
    return f'W/"{hashlib.sha256(chosen.encode()).hexdigest()[:32]}"'
