"""Reading Ahoy's tables straight from Azurite, to check what a request wrote."""

from __future__ import annotations

from typing import Any

from api.storage import table


def ledger_rows() -> list[Any]:
    """Every send row in this test's ledger table (read straight from Azurite)."""
    from api.ledger import SEND, TABLE, Row

    rows = table(TABLE).query_entities(f"RowKey ge '{SEND}' and RowKey lt 'send.'")
    return [Row.from_entity(e) for e in rows]
