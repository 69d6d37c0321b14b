"""The one clock the ledger, the limits, the conversations and the idempotency keys read
(tests move it with `root.use(clock=...)`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from api.core import root


def now() -> datetime:
    """The current time in UTC, from the root's clock."""
    read: Callable[[], datetime] = root.get(root.CLOCK, lambda: _utc_now)
    return read()


def _utc_now() -> datetime:
    return datetime.now(UTC)
