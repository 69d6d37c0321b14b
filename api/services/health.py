"""Is this instance able to serve? Settings complete, storage reachable within a short time.

Answers for GET /api/health (anonymous): it names no setting and no secret, only which
check failed, so it can be open to Azure's health check and to monitors. Being anonymous, it
must not let anyone load storage through it: each process asks storage at most once every
STORAGE_CACHE_SECONDS, one check at a time, within STORAGE_TIMEOUT_SECONDS in all; a request
arriving while a check is under way gets the last result instead of waiting (only the very first
check of a process is waited for).
"""

from __future__ import annotations

import logging
import threading
import time

from azure.core.exceptions import AzureError

from api.core.errors import ConfigurationError
from api.core.settings import get_settings
from api.stores.storage import get_tables

log = logging.getLogger("ahoy.health")

STORAGE_TIMEOUT_SECONDS = 2.0  # connecting and reading together
STORAGE_CACHE_SECONDS = 5.0

_checking = threading.Lock()
# The last check: of which tables (settings can change them), when (monotonic), its result.
_last: tuple[object, float, str] | None = None


def check_health() -> dict[str, str]:
    """Each check's result: `ok`, `failed`, or `skipped` (storage, when settings failed)."""
    try:
        get_settings()
    except ConfigurationError:
        return {"settings": "failed", "storage": "skipped"}
    return {"settings": "ok", "storage": _storage()}


def _storage() -> str:
    global _last
    tables = get_tables()
    last = _last if _last is not None and _last[0] is tables else None
    if last is not None and time.monotonic() - last[1] < STORAGE_CACHE_SECONDS:
        return last[2]
    # One check at a time. While it runs the others answer the last result; only a process's
    # first check, with nothing to answer yet, is waited for.
    if not _checking.acquire(blocking=last is None):
        return last[2] if last is not None else "failed"
    try:
        current = _last if _last is not None and _last[0] is tables else None
        if current is not None and current is not last:
            return current[2]  # another request checked while this one waited
        result = "ok"
        try:
            tables.ping(STORAGE_TIMEOUT_SECONDS / 2)  # connecting, then reading: 2 s in all
        except AzureError as error:
            log.warning("health: storage unreachable (%s)", type(error).__name__)
            result = "failed"
        _last = (tables, time.monotonic(), result)
        return result
    finally:
        _checking.release()
