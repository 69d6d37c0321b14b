"""Admission: what every send passes before Twilio may be asked, makeCall, sendSms or /api/voice.

The ledger row (nothing is sent unrecorded), with the Idempotency-Key claim when there is
one, and the send taken from the limits, at once: one round trip. A send that is stopped here
(a limit, or storage failing) leaves nothing behind: no row, no claim, no count.
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


def admit(row: ledger.Row, settings: Settings, key: idempotency.Key | None = None) -> Claim | None:
    """Record `row` (with the claim of `key`, when given) and take the send from the limits,
    both at once; RateLimited / ServiceUnavailable if a limit is full.

    A key an earlier request holds wins: the limits are given back and its Claim returned.
    """
    mine = limits.caller_windows(row.caller, settings)

    def count(submit: ledger.Submit) -> None:  # the caller's counters, written with the row
        limits.take(mine, submit)

    record: Callable[[], Claim | None] = (
        (lambda: idempotency.claim(key, row, count)) if key else (lambda: ledger.insert(row, count))
    )
    # consume uses at_once itself: it goes first, in this thread (see at_once).
    results = at_once([lambda: limits.consume(row.to, settings), record])
    limited = cast("list[limits.Window] | AhoyError", results[0])
    recorded = cast("Claim | AhoyError | None", results[1])
    taken = limited if isinstance(limited, list) else []
    if isinstance(recorded, AhoyError) or (recorded is not None and not recorded.owned):
        keep_trying(lambda: limits.give_back(taken), "giving back the limits")
        if isinstance(recorded, StorageUnavailable):  # the write may have landed all the same
            keep_trying(lambda: withdraw(row, None, mine, key), f"withdrawing send {row.ref}")
        if isinstance(recorded, AhoyError):
            raise recorded
        return recorded
    if isinstance(limited, AhoyError):
        keep_trying(lambda: withdraw(row, recorded, mine), f"withdrawing send {row.ref}")
        log.info("%s to %s refused: %s", row.kind, mask(row.to), limited.slug)
        raise limited
    return recorded


def withdraw(
    row: ledger.Row,
    held: Claim | None,
    counted: list[limits.Window],
    key: idempotency.Key | None = None,
) -> None:
    """Undo what admission wrote for a send that never reaches Twilio: delete its row and its
    key claim (`held`) together, then give the caller's `counted` windows back. With `key`
    instead of `held`, the write failed and may or may not have landed: the claim is looked
    up first."""
    if held is None and key is not None:
        held = idempotency.find(key, row.ref)
        if held is None:
            return  # the claim, the row and the counters are written together: none landed
    if ledger.delete(row.ref, [idempotency.release_operation(held)] if held else []):
        keep_trying(lambda: limits.give_back(counted), "giving back the limits")
