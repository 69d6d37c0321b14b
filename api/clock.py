"""The one clock the ledger, the limits and the idempotency keys read (tests steer it here)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time in UTC. Call it as `clock.now()` so that a test can replace it."""
    return datetime.now(UTC)
