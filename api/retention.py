"""Retention: what Ahoy deletes, once a day (the `retention` timer function).

- counter rows whose window has ended (untouched for over a day: no window is longer);
- ledger rows (and their SID index) and inbox items (and their recording index) older than
  RETENTION_DAYS: they hold phone numbers and message hashes, which are personal data. An
  Idempotency-Key's claim is its send's row: it goes with it (the key is honoured only for
  IDEMPOTENCY_TTL_HOURS in any case).

Rows are found by query and deleted in entity-group batches of at most 100, per partition, at
most MAX_DELETES per kind per run (the next run goes on). Deleting is idempotent: a row
another run deleted first is skipped, so two runs at once, or one run twice, are safe. Only
counts are logged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api import clock, inbox, ledger, limits
from api.settings import get_settings
from api.storage import (
    TableTransactionError,
    storage_errors,
    table,
)

log = logging.getLogger("ahoy.retention")

BATCH = 100  # the most operations an entity-group transaction takes
MAX_DELETES = 20_000
COUNTER_GRACE = timedelta(hours=25)


@dataclass(frozen=True)
class Expiry:
    """One kind of row to delete: where it lives and the filter that finds the expired."""

    name: str
    table: str
    query: str


def expiries(now: datetime) -> list[Expiry]:
    settings = get_settings()
    cutoff = _odata(now - timedelta(days=settings.retention_days))
    counters_before = _odata(now - COUNTER_GRACE)
    return [
        Expiry("ledger rows", ledger.TABLE, f"{_prefix(ledger.SEND)} and Created lt {cutoff}"),
        Expiry(
            "SID index rows", ledger.TABLE, f"{_prefix(ledger.SID_INDEX)} and Created lt {cutoff}"
        ),
        Expiry("counter windows", limits.TABLE, f"Timestamp lt {counters_before}"),
        Expiry(
            "inbox items",
            inbox.TABLE,
            f"PartitionKey eq '{inbox.ITEMS}' and ReceivedAt lt {cutoff}",
        ),
        Expiry(
            "recording index rows",
            inbox.TABLE,
            f"PartitionKey eq '{inbox.RECORDINGS}' and Timestamp lt {cutoff}",
        ),
    ]


def purge() -> dict[str, int]:
    """Delete what has expired; how many rows of each kind were deleted."""
    deleted = {}
    for expiry in expiries(clock.now()):
        deleted[expiry.name] = _purge(expiry)
    log.info("retention: deleted %s", ", ".join(f"{n} {name}" for name, n in deleted.items()))
    return deleted


def _purge(expiry: Expiry) -> int:
    rows = table(expiry.table)
    deleted = 0
    with storage_errors():
        found = rows.query_entities(
            expiry.query, select=["PartitionKey", "RowKey"], results_per_page=BATCH
        )
        for page in found.by_page():
            by_partition: dict[str, list[Any]] = defaultdict(list)
            for entity in page:
                by_partition[entity["PartitionKey"]].append(entity)
            for entities in by_partition.values():
                deleted += _delete(expiry.table, entities)
            if deleted >= MAX_DELETES:
                break
    return deleted


def _delete(name: str, entities: list[Any]) -> int:
    """Delete one partition's rows in one transaction; row by row if another run was first
    (each as its own transaction: a plain delete does not say whether the row was there)."""
    rows = table(name)
    steps = [
        ("delete", {"PartitionKey": e["PartitionKey"], "RowKey": e["RowKey"]}) for e in entities
    ]
    try:
        rows.submit_transaction(steps)
        return len(steps)
    except TableTransactionError as failed:
        if failed.status_code != 404:
            raise
    deleted = 0
    for step in steps:
        try:
            rows.submit_transaction([step])
        except TableTransactionError as failed:
            if failed.status_code != 404:
                raise
            continue
        deleted += 1
    return deleted


def _prefix(prefix: str) -> str:
    """Row keys that start with `prefix` (`-` is followed by `.` in ASCII)."""
    return f"RowKey ge '{prefix}' and RowKey lt '{prefix[:-1]}.'"


def _odata(moment: datetime) -> str:
    return f"datetime'{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"
