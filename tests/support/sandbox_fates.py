"""Setting how the sandbox ends the next message or call to a number, as a developer does."""

from __future__ import annotations

import requests

from sandbox import Sandbox


def fate(sandbox: Sandbox, to: str, kind: str, status: str, code: int | None = None) -> None:
    """The next `kind` ("message" or "call") to `to` ends `status` (with error `code`)."""
    data = {"to": to, "kind": kind, "status": status, "errorCode": code}
    assert requests.post(f"{sandbox.url}/sandbox/fates", json=data, timeout=5).status_code == 204
