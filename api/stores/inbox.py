"""The inbox table: what reached the app's Twilio number (calls, SMS, voicemails).

Kept in Table Storage, newest first (row keys count down), for GET /api/inbox. Answering
inbound webhooks is `api.services.inbound`'s; notifying about a voicemail is
`api.services.voicemail`'s.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from api.core import clock, pages
from api.core.errors import FieldError, ValidationFailed
from api.core.phone import mask
from api.core.settings import Settings, get_settings
from api.stores import recordings
from api.stores.storage import (
    Expiry,
    ResourceNotFoundError,
    TableTransactionError,
    odata_time,
    storage_errors,
    table,
)

log = logging.getLogger("ahoy.inbox")

TABLE = "inbox"
ITEMS = "inbox"
RECORDINGS = "recording"
SEEN = "seen-"  # marks a Twilio event already kept (items' row keys are digits: they sort first)
_SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")
_NUMBER_OR_CLIENT = re.compile(r"^(\+[1-9]\d{1,14}|client:[A-Za-z0-9_]{1,121}|)$")
_RECORDING_URL = re.compile(r"^https?://[^\s]{1,500}$")


def store_inbound_call(call: Mapping[str, str]) -> bool:
    """Keep an inbound call; False if this CallSid was kept before (a replayed webhook)."""
    sid = call.get("CallSid", "")
    return _insert("call", sid, sid, call, {}) is not None


def store_inbound_sms(message: Mapping[str, str]) -> bool:
    """Keep an inbound SMS; False if this MessageSid was kept before (a replayed webhook)."""
    body = message.get("Body", "")[:1600]
    sid = message.get("MessageSid", "")
    return _insert("sms", sid, sid, message, {"Body": body}) is not None


def store_voicemail(call: Mapping[str, str]) -> bool:
    """Keep a recording (Record's action callback), indexed by its RecordingSid; False if
    this recording was kept before (a replayed webhook)."""
    recording_sid, url = call.get("RecordingSid", ""), call.get("RecordingUrl", "")
    if not _SID.match(recording_sid) or not _RECORDING_URL.match(url):
        raise ValidationFailed([FieldError("RecordingSid", "is not a recording")])
    row = _insert(
        "voicemail",
        recording_sid,
        call.get("CallSid", ""),
        call,
        {"RecordingSid": recording_sid, "RecordingUrl": url},
    )
    if row is None:
        return False
    with storage_errors():
        table(TABLE).upsert_entity(
            {"PartitionKey": RECORDINGS, "RowKey": recording_sid, "Item": row}
        )
    recordings.keep(recording_sid, recordings.INBOX, dict(call))  # the admins' to hear
    return True


def store_transcription(callback: Mapping[str, str]) -> None:
    recording_sid = callback.get("RecordingSid", "")
    if not _SID.match(recording_sid):
        raise ValidationFailed([FieldError("RecordingSid", "is not a recording")])
    with storage_errors():
        inbox = table(TABLE)
        try:
            index = inbox.get_entity(RECORDINGS, recording_sid)
        except ResourceNotFoundError:
            log.warning("transcription for an unknown recording")
            return
        inbox.update_entity(
            {
                "PartitionKey": ITEMS,
                "RowKey": index["Item"],
                "Transcription": callback.get("TranscriptionText", "")[:4000],
            }
        )


def list_inbox(page_size: int, continuation: str | None) -> dict[str, Any]:
    """One page of the inbox, newest first, and the token of the next page."""
    start: Any = pages.decode(continuation)  # the SDK's tokens are dicts, typed as str
    with storage_errors():
        found: Any = (
            table(TABLE)
            .query_entities(
                f"PartitionKey eq '{ITEMS}' and RowKey lt '{SEEN}'", results_per_page=page_size
            )
            .by_page(continuation_token=start)
        )
        items = [_view(entity) for entity in next(found, [])]
        token = found.continuation_token
    return {"items": items, "next": pages.encode(token)}


def _insert(
    kind: str, event: str, sid: str, fields: Mapping[str, str], extra: dict[str, str]
) -> str | None:
    """Keep an item once per Twilio `event` (a SID); its row key, or None for a replay.

    A `seen-<kind>-<event>` marker is written in the same transaction as the item, so a
    replayed or retried webhook (Twilio retries them) finds it and changes nothing.
    """
    sender, receiver = fields.get("From", ""), fields.get("To", "")
    if not _SID.match(sid) or not _NUMBER_OR_CLIENT.match(sender):
        raise ValidationFailed([FieldError("From", "is not a number or an app user")])
    row = f"{10**13 - int(time.time() * 1000):013d}-{sid}"
    now = clock.now()
    item = {
        "PartitionKey": ITEMS,
        "RowKey": row,
        "Kind": kind,
        "Sid": sid,
        "From": sender,
        "To": receiver if _NUMBER_OR_CLIENT.match(receiver) else "",
        "ReceivedAt": now,
        **extra,
    }
    seen = {"PartitionKey": ITEMS, "RowKey": f"{SEEN}{kind}-{event}", "ReceivedAt": now}
    try:
        with storage_errors():
            table(TABLE).submit_transaction([("create", seen), ("create", item)])
    except TableTransactionError as failed:
        if failed.status_code != 409:
            raise
        log.info("inbound %s from %s again: already kept", kind, mask(sender))
        return None
    log.info("inbound %s from %s", kind, mask(sender))
    return row


def _view(entity: Mapping[str, Any]) -> dict[str, Any]:
    view = {
        "kind": entity["Kind"],
        "sid": entity["Sid"],
        "from": entity["From"],
        "to": entity["To"],
        "receivedAt": entity["ReceivedAt"].isoformat().replace("+00:00", "Z"),
    }
    for name, key in (("Body", "body"), ("Transcription", "transcription")):
        if entity.get(name):
            view[key] = entity[name]
    if entity.get("RecordingSid"):  # Ahoy's route, never Twilio's media URL
        base = get_settings().public_base_url
        view["recordingUrl"] = f"{base}/api/recordings/{entity['RecordingSid']}"
    return view


def expiries(now: datetime, settings: Settings) -> list[Expiry]:
    """Inbox items and their recording index, for RETENTION_DAYS."""
    cutoff = odata_time(now - timedelta(days=settings.retention_days))
    return [
        Expiry("inbox items", TABLE, f"PartitionKey eq '{ITEMS}' and ReceivedAt lt {cutoff}"),
        Expiry(
            "recording index rows",
            TABLE,
            f"PartitionKey eq '{RECORDINGS}' and Timestamp lt {cutoff}",
        ),
    ]
