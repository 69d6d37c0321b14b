"""Admission: what every send passes before Twilio may be asked, makeCall, sendSms or /api/voice.

The ledger row (nothing is sent unrecorded; with an Idempotency-Key, the row is the key's
claim) and the send taken from the limits, at once: one round trip of single-entity writes. A
send that is stopped here (a limit, or storage failing) leaves nothing behind: no row, no
claim, no count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

from api import idempotency, ledger, limits
from api.errors import AhoyError, StorageUnavailable
from api.idempotency import Claim
from api.phone import mask
from api.settings import Settings
from api.storage import at_once, keep_trying

log = logging.getLogger("ahoy.admission")


def admit(
    row: ledger.Row,
    settings: Settings,
    key: idempotency.Key | None = None,
    also: Callable[[], None] | None = None,
) -> Claim | None:
    """Record `row` (with the claim of `key`, when given) and take the send from the limits,
    both at once (with `also`, a read the send needs later); RateLimited / ServiceUnavailable
    if a limit is full.

    A key an earlier request holds wins: the limits are given back and its Claim returned.
    """
    record: Callable[[], Claim | None] = (
        (lambda: idempotency.claim(key, row)) if key else (lambda: ledger.insert(row))
    )
    # consume uses at_once itself: it goes first, in this thread (see at_once).
    results = at_once(
        [lambda: limits.consume(row.caller, row.to, settings), record, *([also] if also else [])]
    )
    limited = cast("list[limits.Window] | AhoyError", results[0])
    recorded = cast("Claim | AhoyError | None", results[1])
    taken = limited if isinstance(limited, list) else []
    if isinstance(recorded, AhoyError) or (recorded is not None and not recorded.owned):
        keep_trying(lambda: limits.give_back(taken), "giving back the limits")
        if isinstance(recorded, StorageUnavailable):  # the write may have landed all the same
            keep_trying(lambda: ledger.withdraw(row), f"withdrawing send {row.ref}")
        if isinstance(recorded, AhoyError):
            raise recorded
        return recorded
    if isinstance(limited, AhoyError):
        keep_trying(lambda: ledger.withdraw(row), f"withdrawing send {row.ref}")
        log.info("%s to %s refused: %s", row.kind, mask(row.to), limited.slug)
        raise limited
    return recorded
