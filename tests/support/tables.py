"""Reading Ahoy's tables straight from Azurite, to check what a request wrote."""

from __future__ import annotations

import threading
from typing import Any

from api.stores.storage import KEEP_TRYING_THREAD, table


def ledger_rows() -> list[Any]:
    """Every send row in this test's ledger table (read straight from Azurite)."""
    from api.stores.ledger import SEND, TABLE, Row

    rows = table(TABLE).query_entities(f"RowKey ge '{SEND}' and RowKey lt 'send.'")
    return [Row.from_entity(e) for e in rows]


def background_retries_running() -> bool:
    """Whether a storage.keep_trying retry is still at work in this process."""
    return any(t.name == KEEP_TRYING_THREAD and t.is_alive() for t in threading.enumerate())
