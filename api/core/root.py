"""The composition root: where the collaborators of every service are built, and swapped.

The settings, the tables, the Twilio service and the clock are each built here once per
process, on first use (never at import: a cold start serving /api/twiml builds none of the
heavy ones), by the factory its owner gives (`settings.get_settings`, `storage.get_tables`,
`twilio_service.get_twilio_service`, `clock.now`). Tests and the bench replace them here,
whole, with `use(...)`, and forget what was built with `reset()` after changing settings;
nothing rebinds a module's globals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

T = TypeVar("T")

SETTINGS, TABLES, TWILIO, CLOCK = "settings", "tables", "twilio", "clock"
NAMES = frozenset({SETTINGS, TABLES, TWILIO, CLOCK})

_lock = threading.Lock()
_built: dict[str, Any] = {}
_used: list[dict[str, Any]] = []  # what `use` put in place, innermost last


def get(name: str, build: Callable[[], T]) -> T:
    """The process's `name`: what `use` put in place, else what `build` made (once)."""
    for used in reversed(_used):
        if name in used:
            return cast(T, used[name])
    try:
        return cast(T, _built[name])
    except KeyError:
        pass
    made = build()  # outside the lock: building one may need another (tables need settings)
    with _lock:
        return cast(T, _built.setdefault(name, made))


def reset() -> None:
    """Forget everything built: the next use builds anew (new settings, in tests)."""
    with _lock:
        _built.clear()


@contextmanager
def use(**collaborators: Any) -> Iterator[None]:
    """Put `collaborators` (settings=, tables=, twilio=, clock=) in place for the block."""
    unknown = set(collaborators) - NAMES
    if unknown:
        raise TypeError(f"no such collaborator: {', '.join(sorted(unknown))}")
    with _lock:
        _used.append(collaborators)
    try:
        yield
    finally:
        with _lock:
            _used[:] = [used for used in _used if used is not collaborators]
