"""Small Functions apps for the local host's tests, written as files: the runtime imports the
app's script file and indexes what it finds there, as in Azure, so an app must be a module."""

from __future__ import annotations

import os
import textwrap
import uuid
from pathlib import Path
from typing import Any

from devhost.host import FunctionHost, Keys
from devhost.runtime import SCRIPT_FILE_SETTING

KEYS = Keys(function="function-key-0123456789", master="master-key-0123456789")

# What probe functions saw; each probe app imports this module and appends to it.
SEEN: list[Any] = []


def write_app(folder: Path, source: str) -> str:
    """`source` as a script file of its own in `folder` (a new name each time: the runtime
    imports it as a module, and a module is imported once per process). Its file name."""
    name = f"probe_{uuid.uuid4().hex}.py"
    (folder / name).write_text(textwrap.dedent(source))
    return name


def load_probe(folder: Path, source: str, *, access_log: bool = True) -> FunctionHost:
    """The local host serving `source`, loaded by the runtime in this process."""
    SEEN.clear()
    script = write_app(folder, source)
    before = os.environ.get(SCRIPT_FILE_SETTING)
    os.environ[SCRIPT_FILE_SETTING] = script
    try:
        return FunctionHost.load(folder, keys=KEYS, access_log=access_log)
    finally:
        if before is None:
            del os.environ[SCRIPT_FILE_SETTING]
        else:
            os.environ[SCRIPT_FILE_SETTING] = before
