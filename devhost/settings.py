"""local.settings.json, read as Core Tools reads it: its `Values` become environment variables."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path

# Set by the host itself: its bind address, so an app can tell it runs on loopback here.
BIND_VARIABLE = "DEVHOST_BIND"


def load_local_settings(path: Path, env: MutableMapping[str, str] = os.environ) -> list[str]:
    """Copy `Values` into `env` (variables already set win); return the names copied."""
    if not path.exists():
        return []
    values = json.loads(path.read_text()).get("Values", {})
    copied = []
    for name, value in values.items():
        if name == BIND_VARIABLE or name in env:
            continue
        env[name] = str(value)
        copied.append(name)
    return copied
