"""Retention: what Ahoy deletes, once a day (the `retention` timer function).

Each store declares what it keeps and for how long (its `expiries`): the ledger, the
counters, the inbox and the conversations. Retention deletes what they declare expired.

Rows are found by query and deleted in entity-group batches of at most 100, per partition, at
most MAX_DELETES per kind per run (the next run goes on). Deleting is idempotent: a row
another run deleted first is skipped, so two runs at once, or one run twice, are safe. Only
counts are logged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from api.core import clock
from api.core.settings import get_settings
from api.stores import conversations, inbox, ledger, limits, opt_outs, recordings
from api.stores.storage import Expiry, TableTransactionError, storage_errors, table

log = logging.getLogger("ahoy.retention")

BATCH = 100  # the most operations an entity-group transaction takes
MAX_DELETES = 20_000


# Every store that keeps rows for a while, each declaring its own (`expiries`).
STORES = (ledger, limits, inbox, conversations, recordings, opt_outs)


def expiries(now: datetime) -> list[Expiry]:
    settings = get_settings()
    return [expiry for store in STORES for expiry in store.expiries(now, settings)]


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
                if expiry.before_delete is None or expiry.before_delete(entity):
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
