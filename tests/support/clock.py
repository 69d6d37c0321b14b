"""Moving Ahoy's clock in a test: to the time a retry meets a send no request works on any more."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from api import clock


@contextmanager
def later(minutes: int = 3) -> Iterator[None]:
    """Past the time any request can still be working on a send (messaging.IN_FLIGHT_LIMIT)."""
    moment = clock.now() + timedelta(minutes=minutes)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock, "now", lambda: moment)
        yield
