"""Who is calling the app-facing endpoints."""

from __future__ import annotations

from dataclasses import dataclass

import azure.functions as func

KEY_CALLER_ID = "function-key"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: `id` is stable across sessions (limits and ownership use it)."""

    id: str


def authenticate(req: func.HttpRequest) -> Caller:
    """The Functions host has already checked the function key; every key holder is one caller."""
    return Caller(KEY_CALLER_ID)
