"""Admission: what every send passes before Twilio may be asked, makeCall, sendSms or /api/voice.

The ledger row (nothing is sent unrecorded) and the send taken from the limits, at once: one
round trip. A send the limits refuse stays in the ledger as `refused`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

from api import idempotency, ledger, limits
from api.errors import AhoyError
from api.idempotency import Claim
from api.phone import mask
from api.settings import Settings
from api.storage import at_once

log = logging.getLogger("ahoy.admission")


def admit(
    row: ledger.Row, settings: Settings, claim: Callable[[], Claim] | None = None
) -> Claim | None:
    """Record `row` (with its Idempotency-Key claim, when `claim` is given) and take the send
    from the limits, both at once; RateLimited / ServiceUnavailable if a limit is full.

    A key an earlier request holds wins: the limits are given back and its Claim returned.
    A send the limits refuse stays in the ledger as `refused`, its key released.
    """
    record: Callable[[], Claim | None] = claim or (lambda: ledger.insert(row))
    # consume uses at_once itself: it goes first, in this thread (see at_once).
    results = at_once([lambda: limits.consume(row.caller, row.to, settings), record])
    limited = cast("list[limits.Window] | AhoyError", results[0])
    recorded = cast("Claim | AhoyError | None", results[1])
    taken = limited if isinstance(limited, list) else []
    if isinstance(recorded, AhoyError) or (recorded is not None and not recorded.owned):
        limits.give_back(taken)
        if isinstance(recorded, AhoyError):
            raise recorded
        return recorded
    if isinstance(limited, AhoyError):
        ledger.set_state(row.ref, "refused")
        if recorded is not None:
            idempotency.release(recorded)
        log.info("%s to %s refused: %s", row.kind, mask(row.to), limited.slug)
        raise limited
    return recorded
