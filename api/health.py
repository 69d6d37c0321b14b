"""Is this instance able to serve? Settings complete, storage reachable within a short time.

Answers for GET /api/health (anonymous): it names no setting and no secret, only which
check failed, so it can be open to Azure's health check and to monitors.
"""

from __future__ import annotations

import logging

from azure.core.exceptions import AzureError

from api.errors import ConfigurationError
from api.settings import get_settings
from api.storage import get_tables

log = logging.getLogger("ahoy.health")

STORAGE_TIMEOUT_SECONDS = 2.0


def check_health() -> dict[str, str]:
    """Each check's result: `ok`, `failed`, or `skipped` (storage, when settings failed)."""
    try:
        get_settings()
    except ConfigurationError:
        return {"settings": "failed", "storage": "skipped"}
    try:
        get_tables().ping(STORAGE_TIMEOUT_SECONDS)
    except AzureError as error:
        log.warning("health: storage unreachable (%s)", type(error).__name__)
        return {"settings": "ok", "storage": "failed"}
    return {"settings": "ok", "storage": "ok"}
