"""Twilio's status callbacks for the messages and calls Ahoy created.

The StatusCallback URL of every send carries its ledger reference (`?ref=`), so the first
callback links Twilio's SID to the row by itself. The signature has been checked by then;
the fields are still validated, since a signature does not separate adjacent parameters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from api.core.errors import FieldError, NotFound, ValidationFailed
from api.core.text import ascii_int
from api.stores import ledger

log = logging.getLogger("ahoy.status")

_REF = re.compile(r"^[0-9a-f]{32}$")
_SID = {
    "MessageSid": re.compile(r"^(SM|MM)[0-9a-f]{32}$"),
    "CallSid": re.compile(r"^CA[0-9a-f]{32}$"),
}
_STATUS = re.compile(r"^[a-z-]{3,20}$")


def record_callback(query: Sequence[tuple[str, str]], form: Mapping[str, str]) -> None:
    """Record one callback; NotFound when the row is unknown, 422 when a field is malformed."""
    ref = dict(query).get("ref", "")
    kind = "MessageSid" if "MessageSid" in form else "CallSid"
    sid = form.get(kind, "")
    status = form.get("MessageStatus" if kind == "MessageSid" else "CallStatus", "")
    errors = []
    if not _REF.match(ref):
        errors.append(FieldError("ref", "is not a ledger reference"))
    if not _SID[kind].match(sid):
        errors.append(FieldError(kind, "is not a Twilio SID"))
    if not _STATUS.match(status):
        errors.append(FieldError("status", "is not a Twilio status"))
    sequence = _integer(form.get("SequenceNumber"), "SequenceNumber", errors)
    error_code = _integer(form.get("ErrorCode"), "ErrorCode", errors)
    if errors:
        raise ValidationFailed(errors)
    row = ledger.record_status(
        ref, sid=sid, status=status, sequence=sequence, error_code=error_code
    )
    if row is None:
        raise NotFound("No ledger row for this callback.")
    log.info("%s %s: %s", row.kind, sid, status)


def _integer(raw: str | None, name: str, errors: list[FieldError]) -> int | None:
    if raw is None or raw == "":
        return None
    number = ascii_int(raw)
    if number is None:
        errors.append(FieldError(name, "is not a number"))
    return number
