"""Admission: what every send passes before Twilio may be asked, makeCall, sendSms or /api/voice.

The ledger row is written first (nothing is sent unrecorded), then the send is taken from the
limits. A send the limits refuse stays in the ledger as `refused`.
"""

from __future__ import annotations

import logging

from api import ledger, limits
from api.errors import AhoyError
from api.phone import mask
from api.settings import Settings

log = logging.getLogger("ahoy.admission")


def admit(row: ledger.Row, settings: Settings) -> None:
    """Record `row`, then take it from the limits; RateLimited / ServiceUnavailable if full."""
    ledger.insert(row)
    try:
        limits.consume(row.caller, row.to, settings)
    except AhoyError as refused:
        ledger.set_state(row.ref, "refused")
        log.info("%s to %s refused: %s", row.kind, mask(row.to), refused.slug)
        raise
