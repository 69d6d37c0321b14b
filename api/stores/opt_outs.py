"""Opt-outs: recipients who texted STOP (or whom Twilio refused with 21610), refused before
Twilio is asked, until they text START.

Table `optouts`: partition = the number (E.164), one row: `{At, Source}`. Kept until the
recipient opts back in or an admin clears it; with OPT_OUT_KEEP_DAYS, deleted that many days
after the opt-out (whatever the law of the destinations asks: normal retention never deletes
them). A send is checked with one point read, at once with its admission.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from api.core import clock, pages
from api.core.errors import NotFound, RecipientOptedOut
from api.core.phone import mask
from api.core.settings import Settings
from api.stores.storage import (
    Expiry,
    ResourceNotFoundError,
    TableTransactionError,
    odata_time,
    storage_errors,
    table,
)

log = logging.getLogger("ahoy.opt_outs")

TABLE = "optouts"


def mark(number: str, source: str) -> None:
    """`number` has opted out (`source`: the keyword, or Twilio's error code)."""
    from azure.data.tables import UpdateMode

    entity = {"PartitionKey": number, "RowKey": "", "At": clock.now(), "Source": source}
    with storage_errors():
        table(TABLE).upsert_entity(entity, mode=UpdateMode.REPLACE)
    log.info("%s opted out (%s)", mask(number), source)


def clear(number: str) -> bool:
    """`number` has opted back in; False when it had not opted out."""
    try:
        with storage_errors():  # a transaction's delete says whether the row was there
            table(TABLE).submit_transaction([("delete", {"PartitionKey": number, "RowKey": ""})])
    except TableTransactionError as failed:
        if failed.status_code != 404:
            raise
        return False
    log.info("%s opted back in", mask(number))
    return True


def check(number: str) -> None:
    """RecipientOptedOut (422) if `number` has opted out. Says nothing of who or when."""
    with storage_errors():
        try:
            table(TABLE).get_entity(number, "", select=["At"])
        except ResourceNotFoundError:
            return
    raise RecipientOptedOut("The recipient has opted out of messages from this app (STOP).")


def list_page(page_size: int, continuation: str | None) -> dict[str, Any]:
    """One page of opt-outs, by number (for admins)."""
    start: Any = pages.decode(continuation)
    with storage_errors():
        found: Any = (
            table(TABLE).list_entities(results_per_page=page_size).by_page(continuation_token=start)
        )
        items = [
            {
                "number": entity["PartitionKey"],
                "at": entity["At"].isoformat().replace("+00:00", "Z"),
                "source": entity.get("Source", ""),
            }
            for entity in next(found, [])
        ]
        token = found.continuation_token
    return {"items": items, "next": pages.encode(token)}


def remove(number: str) -> None:
    """An admin clears an opt-out; NotFound if there is none."""
    if not clear(number):
        raise NotFound("This number has not opted out.")


def expiries(now: datetime, settings: Settings) -> list[Expiry]:
    """Only with OPT_OUT_KEEP_DAYS: opt-outs older than that."""
    if not settings.opt_out_keep_days:
        return []
    cutoff = odata_time(now - timedelta(days=settings.opt_out_keep_days))
    return [Expiry("opt-outs", TABLE, f"At lt {cutoff}")]
