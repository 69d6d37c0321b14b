"""Send limits, counted in Table Storage so they hold across scaled-out instances.

Per caller: RATE_LIMIT_PER_MINUTE and DAILY_QUOTA; per destination: DESTINATION_LIMIT_PER_HOUR;
for the whole app: GLOBAL_DAILY_CAP. Windows are fixed UTC minutes, hours and days.

Every counter moves by a conditional write (ETag), so concurrent sends never both take the
last slot. To keep that cheap on the send path:
- the caller's and the destination's counters are taken concurrently, each in one request
  when this process already holds the counter's ETag (it remembers the last one it saw; a
  stale one costs a re-read), then the app's cap, only for a send they admitted;
- the caller's minute and day are two columns of one row (the day's; the minute column counts
  only the minute its `MinuteOf` column names), so both move in one single-entity write, with
  no transaction;
- the app's daily cap is split over `GLOBAL_SHARDS` rows of one partition, each with its part
  of the cap; each process takes from the first shard with room in an order of its own (a
  random one), skipping shards its other sends are writing at that moment, so instances
  rarely write the same row and each one's ETags stay fresh; after a conflict it reads the
  whole partition again. A send is refused only when every shard is full, re-read to be
  sure, so the cap stays exact;
- a send one counter refuses gives back what the others took.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api.core import clock
from api.core.errors import AhoyError, RateLimited, ServiceUnavailable
from api.core.settings import Settings
from api.stores.storage import (
    Expiry,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    at_once,
    key_of,
    odata_time,
    storage_errors,
    table,
)

log = logging.getLogger("ahoy.limits")

TABLE = "counters"
COUNTER_GRACE = timedelta(hours=25)  # no window is longer than a day
GLOBAL_SHARDS = 128
MAX_ATTEMPTS = 200  # conditional writes lost to other writers before giving up (503)


@dataclass(frozen=True)
class Window:
    """One counter: its row and column, how many it allows, and when its window ends.

    With `period`, the column counts only while the row's `<column>Of` holds that period (a
    minute counted in the day's row); in any other period it counts from 0.
    """

    partition: str
    row: str
    limit: int
    ends: datetime
    detail: str
    column: str = "Count"
    period: str = ""

    def retry_after(self, now: datetime) -> int:
        return max(1, int((self.ends - now).total_seconds()) + 1)

    def count(self, values: Mapping[str, Any] | None) -> int:
        """This window's count in the row's `values` (None: no row yet)."""
        if values is None or (self.period and values.get(f"{self.column}Of") != self.period):
            return 0
        return int(values.get(self.column) or 0)

    def columns(self, count: int) -> dict[str, Any]:
        """What the row stores for this window holding `count`."""
        return {self.column: count, **({f"{self.column}Of": self.period} if self.period else {})}


class _Full(Exception):
    """A counter is at its limit (after reading it fresh)."""

    def __init__(self, window: Window) -> None:
        self.window = window


def consume(caller: str | None, destination: str, settings: Settings) -> list[Window]:
    """Take one send from every window (what `give_back` returns), or raise RateLimited /
    ServiceUnavailable (the global cap) having taken nothing. With no `caller` (a send Ahoy
    makes itself, such as an auto-reply) only the destination's and the app's count.

    The caller's and the destination's windows first (at once), the app's cap only for a send
    they admit: a send its own limits refuse never holds a slot of the cap, so concurrent sends
    never read such a passing hold as the cap spent, and a 503 means it is."""
    now = clock.now()
    minute, day, hour, glob = _windows(caller or "", destination, settings, now)
    counters = _counters()
    jobs: list[Callable[[], list[Window]]] = [lambda: _or_full(lambda: counters.take([hour]))]
    if caller is not None:
        jobs.append(lambda: _or_full(lambda: counters.take([minute, day])))  # one row
    results = at_once(jobs)
    taken = [w for result in results if isinstance(result, list) for w in result]
    errors = [result for result in results if not isinstance(result, list)]
    if not errors:
        try:
            return taken + counters.take_global(glob, settings.global_daily_cap)
        except _Full:
            give_back(taken)
            raise ServiceUnavailable(glob.detail, retry_after=glob.retry_after(now)) from None
        except AhoyError:
            give_back(taken)
            raise
    give_back(taken)
    refusals = [e for e in errors if isinstance(e, _Refusal)]
    if len(refusals) < len(errors):
        raise next(e for e in errors if not isinstance(e, _Refusal))
    # The first refusal in the order minute, day, destination is the one reported.
    order = [minute, day, hour]
    full = min((r.window for r in refusals), key=order.index)
    raise RateLimited(full.detail, retry_after=full.retry_after(now))


def consume_global(settings: Settings) -> None:
    """Take one send from the app's daily cap only (notifications Ahoy sends itself)."""
    now = clock.now()
    glob = _windows("", "", settings, now)[3]
    try:
        _counters().take_global(glob, settings.global_daily_cap)
    except _Full:
        raise ServiceUnavailable(glob.detail, retry_after=glob.retry_after(now)) from None


def give_back(taken: list[Window]) -> None:
    """Return what `consume` took (a send that was refused elsewhere, or never made)."""
    counters = _counters()
    rows: dict[tuple[str, str], list[Window]] = {}
    for window in taken:
        rows.setdefault((window.partition, window.row), []).append(window)
    at_once([_giving_back(counters, windows) for windows in rows.values()])


def _giving_back(counters: Counters, windows: list[Window]) -> Callable[[], None]:
    return lambda: counters.give_back(windows)


class _Refusal(AhoyError):
    """A counter refused (carried through `at_once`, which passes AhoyErrors on)."""

    def __init__(self, window: Window) -> None:
        super().__init__(window.detail)
        self.window = window


def _or_full(take: Callable[[], list[Window]]) -> list[Window]:
    try:
        return take()
    except _Full as full:
        raise _Refusal(full.window) from None


def _windows(
    caller: str, destination: str, settings: Settings, now: datetime
) -> tuple[Window, Window, Window, Window]:
    minute = now.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    day = hour.replace(hour=0)
    who, where = key_of(caller), key_of(destination)
    return (
        Window(
            f"caller-{who}",
            day.strftime("d%Y%m%d"),
            settings.rate_limit_per_minute,
            minute + timedelta(minutes=1),
            f"At most {settings.rate_limit_per_minute} sends a minute per caller.",
            column="Minute",
            period=minute.strftime("%H%M"),
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
            day.strftime("global-d%Y%m%d"),
            "",  # a shard: see Counters.take_global
            settings.global_daily_cap,
            day + timedelta(days=1),
            "This app has reached its daily send cap.",
        ),
    )


def shard_limits(cap: int) -> list[int]:
    """How the daily cap is split over the shards (they add up to it exactly)."""
    return [
        cap // GLOBAL_SHARDS + (1 if i < cap % GLOBAL_SHARDS else 0) for i in range(GLOBAL_SHARDS)
    ]


# A counter row as this process last saw it: its columns and its ETag.
Seen = tuple[dict[str, Any], str]


class Counters:
    """The counters table, with the last values and ETag this process saw for each row."""

    def __init__(self) -> None:
        self._table = table(TABLE)
        self._known: dict[tuple[str, str], Seen] = {}
        self._lock = threading.Lock()
        # This process's order of the global shards, and how many of its sends write each now.
        self._order = random.sample(range(GLOBAL_SHARDS), GLOBAL_SHARDS)
        self._writing: Counter[int] = Counter()
        # One writer per row in this process: its sends queue for a row (one caller's, one
        # destination's) instead of racing each other's ETags; other processes' writes are
        # still caught by the ETag.
        self._row_locks: dict[tuple[str, str], threading.Lock] = {}

    def _row_lock(self, partition: str, row: str) -> threading.Lock:
        with self._lock:
            if len(self._row_locks) > 10_000:  # old windows pile up; forget the idle ones
                self._row_locks = {k: v for k, v in self._row_locks.items() if v.locked()}
            return self._row_locks.setdefault((partition, row), threading.Lock())

    def take(self, windows: list[Window]) -> list[Window]:
        """One more on each window (all in one row), all or none; _Full if one is at its
        limit."""
        partition, row = windows[0].partition, windows[0].row
        with self._row_lock(partition, row):
            for _ in range(MAX_ATTEMPTS):
                seen = self._seen(partition, row)
                full = [w for w in windows if w.count(_values(seen)) + 1 > w.limit]
                if full:
                    fresh = self._read(partition, row)
                    if fresh is not None and all(w.count(fresh[0]) + 1 > w.limit for w in full):
                        raise _Full(full[0])
                    continue
                if self._write(windows, seen, +1):
                    return windows
        raise ServiceUnavailable("Too much contention on the send counters.", retry_after=1)

    def take_global(self, glob: Window, cap: int) -> list[Window]:
        """One send from the daily cap: from the first shard with room in this process's
        order that none of its other sends is writing (else the first with room), else
        _Full."""
        limits = shard_limits(cap)
        shards = [_shard(i) for i in range(GLOBAL_SHARDS)]
        refreshed = False
        if not any(self._seen(glob.partition, row) for row in shards):
            self._read_partition(glob.partition)  # a process's first send of the day: 1 read
            refreshed = True
        for _ in range(MAX_ATTEMPTS):
            counts = [glob.count(_values(self._seen(glob.partition, row))) for row in shards]
            open_shards = [i for i in self._order if limits[i] and counts[i] < limits[i]]
            if not open_shards:
                if refreshed:
                    raise _Full(glob)
                self._read_partition(glob.partition)
                refreshed = True
                continue
            with self._lock:
                shard = next((i for i in open_shards if not self._writing[i]), open_shards[0])
                self._writing[shard] += 1
            window = Window(glob.partition, _shard(shard), limits[shard], glob.ends, glob.detail)
            try:
                seen = self._seen(glob.partition, window.row)  # maybe newer than `counts`
                if window.count(_values(seen)) + 1 > window.limit:
                    continue
                if self._write([window], seen, +1, whole=True):
                    return [window]
            finally:
                with self._lock:
                    self._writing[shard] -= 1
            refreshed = True  # another process wrote the shard: every shard was read again
        raise ServiceUnavailable("Too much contention on the send counters.", retry_after=1)

    def give_back(self, windows: list[Window]) -> None:
        """One less on each of `windows` (all in one row) that still counts this send's
        period (a send that another counter refused)."""
        partition, row = windows[0].partition, windows[0].row
        with self._row_lock(partition, row):
            for _ in range(MAX_ATTEMPTS):
                seen = self._seen(partition, row) or self._read(partition, row)
                counted = [w for w in windows if w.count(_values(seen)) > 0]
                if seen is None or not counted:
                    return
                if self._write(counted, seen, -1):
                    return

    # --- storage ---------------------------------------------------------------------------

    def _write(
        self, windows: list[Window], seen: Seen | None, step: int, *, whole: bool = False
    ) -> bool:
        """Move every window (one row) by `step` if the row did not change since `seen`; False
        if it did, having read it again (with `whole`, its whole partition: another process
        writing one global shard has likely written others this process will pick next)."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        # The SDK retries a request whose answer was lost; if the write had landed, the retry
        # fails (412/409) against it. The token tells this write's own result from another's,
        # so a landed write is never taken twice.
        token = secrets.token_hex(8)
        values = dict(_values(seen) or {})
        for window in windows:
            values.update(window.columns(window.count(_values(seen)) + step))
        entity = {
            **values,
            "PartitionKey": windows[0].partition,
            "RowKey": windows[0].row,
            "Token": token,
        }
        try:
            with storage_errors():
                if seen is None:
                    metadata = self._table.create_entity(entity)
                else:
                    metadata = self._table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=seen[1],
                        match_condition=MatchConditions.IfNotModified,
                    )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return self._refresh(windows[0], token, whole)
        self._remember(entity, metadata["etag"])
        return True

    def _read(self, partition: str, row: str) -> Seen | None:
        with storage_errors():
            try:
                entity = self._table.get_entity(partition, row)
            except ResourceNotFoundError:
                with self._lock:
                    self._known.pop((partition, row), None)
                return None
        return self._remember(entity, str(entity.metadata["etag"]))

    def _read_partition(self, partition: str) -> None:
        with storage_errors():
            entities = list(self._table.query_entities(f"PartitionKey eq '{partition}'"))
        for entity in entities:
            self._remember(entity, str(entity.metadata["etag"]))

    def _remember(self, entity: Mapping[str, Any], etag: str) -> Seen:
        values = {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")}
        seen = (values, etag)
        with self._lock:
            if len(self._known) > 10_000:  # old windows pile up; forget them all
                self._known.clear()
            self._known[(entity["PartitionKey"], entity["RowKey"])] = seen
        return seen

    def _seen(self, partition: str, row: str) -> Seen | None:
        with self._lock:
            return self._known.get((partition, row))

    def _refresh(self, window: Window, token: str, whole: bool) -> bool:
        """A write failed on a conflict: read the row (or its partition). True if it holds
        this write after all (its answer was lost and the SDK's retry met it), False if
        another writer's."""
        if whole:
            self._read_partition(window.partition)
            seen = self._seen(window.partition, window.row)
        else:
            seen = self._read(window.partition, window.row)
        if seen is not None and seen[0].get("Token") == token:
            log.info("a counter write landed though its answer was lost")
            return True
        return False


def _values(seen: Seen | None) -> dict[str, Any] | None:
    return seen[0] if seen else None


def _shard(index: int) -> str:
    return f"s{index:03d}"


_counters_by_table: dict[str, Counters] = {}
_counters_lock = threading.Lock()


def _counters() -> Counters:
    """The process's Counters for the current tables (tests change the tables' prefix)."""
    name = table(TABLE).table_name
    with _counters_lock:
        counters = _counters_by_table.get(name)
        if counters is None:
            counters = _counters_by_table[name] = Counters()
        return counters


def expiries(now: datetime, settings: Settings) -> list[Expiry]:
    """Counter rows whose window has ended: untouched for over a day."""
    return [Expiry("counter windows", TABLE, f"Timestamp lt {odata_time(now - COUNTER_GRACE)}")]
