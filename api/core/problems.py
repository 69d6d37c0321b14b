"""RFC 9457 problem details for Ahoy's errors, without the Functions library.

`problem_for` turns an `AhoyError` into a status, the headers that status calls for and a
JSON body; the HTTP edge (`api.edge.http`) wraps it in a response, and the send service stores
it as a replayable `Answer`. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from api.core.errors import AhoyError, ConfigurationError, NotAuthenticated, ValidationFailed

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:ahoy:problem:"


@dataclass(frozen=True)
class Problem:
    """A problem document: its status, the response headers it needs, and its JSON body."""

    status: int
    headers: dict[str, str]
    body: str
    content_type: str = PROBLEM_JSON


def problem_for(error: AhoyError) -> Problem:
    """The problem document for `error` (see README, "Errors")."""
    document: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + error.slug,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if isinstance(error, ValidationFailed):
        document["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    if isinstance(error, ConfigurationError):
        document["settings"] = error.settings
    if error.code is not None:
        document["twilioCode"] = error.code
    headers = {"Cache-Control": "no-store"}
    if error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, NotAuthenticated) and error.www_authenticate:
        headers["WWW-Authenticate"] = error.www_authenticate
    return Problem(error.status, headers, json.dumps(document, separators=(",", ":")))
