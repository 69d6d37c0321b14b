"""Recordings Ahoy keeps track of: each voicemail's owner, so Ahoy serves it to them alone.

Table `recordings`: partition = the RecordingSid, one row: `{Owner, CallSid, From, Created}`.
`Owner` is the user whose voicemail it is, or empty for the inbox's (served to admins). The
audio stays at Twilio; Ahoy fetches it with the account's credentials when its owner asks.
A recording row that retention deletes is deleted at Twilio first.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from api.core import clock
from api.core.errors import AhoyError, FieldError, NotFound, ValidationFailed
from api.core.settings import Settings
from api.stores.storage import (
    Expiry,
    ResourceNotFoundError,
    odata_time,
    storage_errors,
    table,
)

log = logging.getLogger("ahoy.recordings")

TABLE = "recordings"
INBOX = ""  # the owner of the inbox's recordings: its admins


def check_sid(sid: str) -> str:
    if (
        len(sid) != 34
        or not sid.startswith("RE")
        or not all(c in "0123456789abcdef" for c in sid[2:])
    ):
        raise ValidationFailed([FieldError("sid", "is not a recording SID (RE and 32 hex digits)")])
    return sid


def keep(sid: str, owner: str, call: dict[str, str]) -> None:
    """Remember that recording `sid` is `owner`'s (INBOX for the inbox's)."""
    from azure.data.tables import UpdateMode

    entity = {
        "PartitionKey": check_sid(sid),
        "RowKey": "",
        "Owner": owner,
        "CallSid": call.get("CallSid", ""),
        "From": call.get("From", ""),
        "Created": clock.now(),
    }
    with storage_errors():
        table(TABLE).upsert_entity(entity, mode=UpdateMode.REPLACE)


def owner_of(sid: str) -> str:
    """The owner of recording `sid` (INBOX for the inbox's); NotFound if Ahoy has none."""
    with storage_errors():
        try:
            entity = table(TABLE).get_entity(check_sid(sid), "")
        except ResourceNotFoundError:
            raise NotFound(f"No recording {sid}.") from None
    return str(entity["Owner"])


def forget(sid: str) -> None:
    with storage_errors():
        table(TABLE).delete_entity(check_sid(sid), "")


def expiries(now: datetime, settings: Settings) -> list[Expiry]:
    """Recordings for RETENTION_DAYS; each deleted at Twilio before its row goes."""
    cutoff = odata_time(now - timedelta(days=settings.retention_days))
    return [Expiry("recordings", TABLE, f"Created lt {cutoff}", before_delete=_delete_at_twilio)]


def _delete_at_twilio(entity: Any) -> bool:
    """Delete the recording at Twilio; False (keep the row, try next run) if that failed."""
    from api.stores.twilio_service import get_twilio_service

    try:
        get_twilio_service().delete_recording(entity["PartitionKey"])
    except AhoyError as failed:
        log.warning("recording not deleted at Twilio (%s): kept for the next run", failed.slug)
        return False
    return True
