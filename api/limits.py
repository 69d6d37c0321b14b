"""Send limits, counted in Table Storage so they hold across scaled-out instances.

Per caller: RATE_LIMIT_PER_MINUTE and DAILY_QUOTA; per destination: DESTINATION_LIMIT_PER_HOUR;
for the whole app: GLOBAL_DAILY_CAP. Windows are fixed UTC minutes, hours and days. Each
counter is incremented with optimistic concurrency (ETag), so concurrent sends never both
take the last slot; a refused send gives back what it took from the other counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from api import clock
from api.errors import RateLimited, ServiceUnavailable
from api.settings import Settings
from api.storage import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    key_of,
    storage_errors,
    table,
)

TABLE = "counters"


@dataclass(frozen=True)
class Window:
    """One counter: what it limits, how many, and when its window ends."""

    partition: str
    row: str
    limit: int
    ends: datetime
    detail: str
    global_cap: bool = False

    def retry_after(self, now: datetime) -> int:
        return max(1, int((self.ends - now).total_seconds()) + 1)


def consume(caller: str, destination: str, settings: Settings) -> None:
    """Take one send from every window, or raise RateLimited / ServiceUnavailable (global)."""
    now = clock.now()
    taken: list[Window] = []
    for window in _windows(caller, destination, settings, now):
        if not _increment(window, +1):
            for earlier in taken:
                _increment(earlier, -1)
            if window.global_cap:
                raise ServiceUnavailable(window.detail, retry_after=window.retry_after(now))
            raise RateLimited(window.detail, retry_after=window.retry_after(now))
        taken.append(window)


def consume_global(settings: Settings) -> None:
    """Take one send from the app's daily cap only (notifications Ahoy sends itself)."""
    now = clock.now()
    [window] = [w for w in _windows("", "", settings, now) if w.global_cap]
    if not _increment(window, +1):
        raise ServiceUnavailable(window.detail, retry_after=window.retry_after(now))


def _windows(caller: str, destination: str, settings: Settings, now: datetime) -> list[Window]:
    minute = now.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    day = hour.replace(hour=0)
    who, where = key_of(caller), key_of(destination)
    return [
        Window(
            f"caller-{who}",
            minute.strftime("m%Y%m%d%H%M"),
            settings.rate_limit_per_minute,
            minute + timedelta(minutes=1),
            f"At most {settings.rate_limit_per_minute} sends a minute per caller.",
        ),
        Window(
            f"caller-{who}",
            day.strftime("d%Y%m%d"),
            settings.daily_quota,
            day + timedelta(days=1),
            f"At most {settings.daily_quota} sends a day per caller.",
        ),
        Window(
            f"to-{where}",
            hour.strftime("h%Y%m%d%H"),
            settings.destination_limit_per_hour,
            hour + timedelta(hours=1),
            f"At most {settings.destination_limit_per_hour} sends an hour to one destination.",
        ),
        Window(
            "global",
            day.strftime("d%Y%m%d"),
            settings.global_daily_cap,
            day + timedelta(days=1),
            "This app has reached its daily send cap.",
            global_cap=True,
        ),
    ]


def _increment(window: Window, step: int) -> bool:
    """Move the window's count by `step`; False (and no change) if that would pass the limit."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    counters = table(TABLE)
    for _ in range(50):
        with storage_errors():
            try:
                entity = counters.get_entity(window.partition, window.row)
            except ResourceNotFoundError:
                if step < 0:
                    return True
                try:
                    counters.create_entity(
                        {"PartitionKey": window.partition, "RowKey": window.row, "Count": 1}
                    )
                except ResourceExistsError:
                    continue
                return window.limit >= 1
            count = int(entity["Count"]) + step
            if step > 0 and count > window.limit:
                return False
            try:
                counters.update_entity(
                    {
                        "PartitionKey": window.partition,
                        "RowKey": window.row,
                        "Count": max(count, 0),
                    },
                    mode=UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                continue
            return True
    raise ServiceUnavailable("Too much contention on the send counters.", retry_after=1)
