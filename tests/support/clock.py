"""Moving Ahoy's clock in a test: to the time a retry meets a send no request works on any more."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta

from api.core import clock, root


@contextmanager
def at(moment: datetime) -> Iterator[None]:
    """Ahoy's clock stopped at `moment` for the block (the composition root's clock)."""
    with root.use(clock=lambda: moment):
        yield


@contextmanager
def moved(by: timedelta) -> Iterator[None]:
    """Ahoy's clock `by` from now, stopped there, for the block."""
    with at(clock.now() + by):
        yield


def later(minutes: int = 3) -> AbstractContextManager[None]:
    """Past the time any request can still be working on a send (sending.IN_FLIGHT_LIMIT)."""
    return moved(timedelta(minutes=minutes))
