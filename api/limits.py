"""Send limits, counted in Table Storage so they hold across scaled-out instances.

Per caller: RATE_LIMIT_PER_MINUTE and DAILY_QUOTA; per destination: DESTINATION_LIMIT_PER_HOUR;
for the whole app: GLOBAL_DAILY_CAP. Windows are fixed UTC minutes, hours and days.

Every counter moves by a conditional write (ETag), so concurrent sends never both take the
last slot. To keep that cheap on the send path:
- each counter moves in one request when this process already holds its ETag (it remembers
  the last one it saw; a stale one costs a re-read);
- the caller's minute and day counters live in the caller's ledger partition (rows
  `count-m<minute>` and `count-d<day>`) and move in the transaction that writes the send's
  row and key claim (`take`, through ledger.write_counted): one request for all of them;
- the destination's and the app's counters (table `counters`) are taken at the same time
  (`consume`);
- the app's daily cap is split over `GLOBAL_SHARDS` rows of one partition, each with its part
  of the cap, so concurrent sends from many instances rarely write the same row; a send is
  refused only when every shard is full, re-read to be sure, so the cap stays exact;
- a send one counter refuses gives back what the others took.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api import clock, ledger
from api.errors import AhoyError, RateLimited, ServiceUnavailable
from api.settings import Settings
from api.storage import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    TableTransactionError,
    at_once,
    key_of,
    storage_errors,
    table,
)

log = logging.getLogger("ahoy.limits")

TABLE = "counters"
CALLER_COUNT = "count-"  # row key prefix of the caller's counters in the ledger
GLOBAL_SHARDS = 32
MAX_ATTEMPTS = 200  # conditional writes lost to other writers before giving up (503)


@dataclass(frozen=True)
class Window:
    """One counter: its row, how many it allows, and when its window ends."""

    partition: str
    row: str
    limit: int
    ends: datetime
    detail: str
    table: str = TABLE

    def retry_after(self, now: datetime) -> int:
        return max(1, int((self.ends - now).total_seconds()) + 1)


class _Full(Exception):
    """A counter is at its limit (after reading it fresh)."""

    def __init__(self, window: Window) -> None:
        self.window = window


def caller_windows(caller: str, settings: Settings) -> list[Window]:
    """The caller's minute and day windows (for `take`, and `give_back`)."""
    return list(_windows(caller, "", settings, clock.now())[:2])


def take(windows: list[Window], submit: ledger.Submit) -> None:
    """One more on each of the caller's `windows`, written by `submit` with the send's row
    (see ledger.write_counted); RateLimited, having written nothing, if one is full."""
    now = clock.now()
    try:
        _counters(ledger.TABLE).take(windows, submit)
    except _Full as full:
        raise RateLimited(full.window.detail, retry_after=full.window.retry_after(now)) from None


def consume(destination: str, settings: Settings) -> list[Window]:
    """Take one send from the destination's hour and the app's day (what `give_back`
    returns), or raise RateLimited / ServiceUnavailable (the global cap) having taken
    nothing."""
    now = clock.now()
    _, _, hour, glob = _windows("", destination, settings, now)
    counters = _counters(TABLE)
    results = at_once(
        [
            lambda: _or_full(lambda: counters.take([hour])),
            lambda: _or_full(lambda: counters.take_global(glob, settings.global_daily_cap)),
        ]
    )
    taken = [w for result in results if isinstance(result, list) for w in result]
    errors = [result for result in results if not isinstance(result, list)]
    if not errors:
        return taken
    give_back(taken)
    refusals = [e for e in errors if isinstance(e, _Refusal)]
    if len(refusals) < len(errors):
        raise next(e for e in errors if not isinstance(e, _Refusal))
    full = refusals[0].window  # the destination's first: it is the one the caller can change
    if full.partition == glob.partition:
        raise ServiceUnavailable(full.detail, retry_after=full.retry_after(now))
    raise RateLimited(full.detail, retry_after=full.retry_after(now))


def consume_global(settings: Settings) -> None:
    """Take one send from the app's daily cap only (notifications Ahoy sends itself)."""
    now = clock.now()
    glob = _windows("", "", settings, now)[3]
    try:
        _counters(TABLE).take_global(glob, settings.global_daily_cap)
    except _Full:
        raise ServiceUnavailable(glob.detail, retry_after=glob.retry_after(now)) from None


def give_back(taken: list[Window]) -> None:
    """Return what `consume` or `take` took (a send that was refused elsewhere, or never
    made)."""
    at_once([_giving_back(window) for window in taken])


def _giving_back(window: Window) -> Callable[[], None]:
    return lambda: _counters(window.table).give_back(window)


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
    who, where = ledger.caller_partition(caller), key_of(destination)
    return (
        Window(
            who,
            minute.strftime(f"{CALLER_COUNT}m%Y%m%d%H%M"),
            settings.rate_limit_per_minute,
            minute + timedelta(minutes=1),
            f"At most {settings.rate_limit_per_minute} sends a minute per caller.",
            ledger.TABLE,
        ),
        Window(
            who,
            day.strftime(f"{CALLER_COUNT}d%Y%m%d"),
            settings.daily_quota,
            day + timedelta(days=1),
            f"At most {settings.daily_quota} sends a day per caller.",
            ledger.TABLE,
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


class Counters:
    """A table's counters, with the last count and ETag this process saw for each row."""

    def __init__(self, name: str) -> None:
        self._table = table(name)
        self._known: dict[tuple[str, str], tuple[int, str]] = {}
        self._lock = threading.Lock()

    def take(self, windows: list[Window], submit: ledger.Submit | None = None) -> list[Window]:
        """One more on each window (one partition), all or none; _Full if one is at its limit.

        With `submit`, the writes go through it (see ledger.write_counted)."""
        partition = windows[0].partition
        for _ in range(MAX_ATTEMPTS):
            known = [self._seen(partition, w.row) for w in windows]
            full = [w for w, k in zip(windows, known, strict=True) if k and k[0] + 1 > w.limit]
            if full:
                fresh = self._read(partition, [w.row for w in full])
                if all(k and k[0] + 1 > w.limit for w, k in zip(full, fresh, strict=True)):
                    raise _Full(full[0])
                continue
            if self._write(windows, known, +1, submit):
                return windows
        raise ServiceUnavailable("Too much contention on the send counters.", retry_after=1)

    def take_global(self, glob: Window, cap: int) -> list[Window]:
        """One send from the daily cap: from a random shard with room, else _Full."""
        limits = shard_limits(cap)
        shards = [_shard(i) for i in range(GLOBAL_SHARDS)]
        refreshed = False
        if not any(self._seen(glob.partition, row) for row in shards):
            self._read_partition(glob.partition)  # a process's first send of the day: 1 read
            refreshed = True
        for _ in range(MAX_ATTEMPTS):
            seen = [self._seen(glob.partition, row) for row in shards]
            open_shards = [
                i for i, limit in enumerate(limits) if limit and (seen[i] or (0, ""))[0] < limit
            ]
            if not open_shards:
                if refreshed:
                    raise _Full(glob)
                self._read_partition(glob.partition)
                refreshed = True
                continue
            shard = random.choice(open_shards)  # noqa: S311  # spreading writes, not a secret
            window = Window(glob.partition, _shard(shard), limits[shard], glob.ends, glob.detail)
            try:
                return self.take([window])
            except _Full:
                continue
        raise ServiceUnavailable("Too much contention on the send counters.", retry_after=1)

    def give_back(self, window: Window) -> None:
        """One less on `window` (a send that another counter refused)."""
        for _ in range(MAX_ATTEMPTS):
            known = (
                self._seen(window.partition, window.row)
                or self._read(window.partition, [window.row])[0]
            )
            if known is None or known[0] <= 0:
                return
            if self._write([window], [known], -1):
                return

    # --- storage ---------------------------------------------------------------------------

    def _write(
        self,
        windows: list[Window],
        known: list[tuple[int, str] | None],
        step: int,
        submit: ledger.Submit | None = None,
    ) -> bool:
        """Move every window by `step` if none changed since `known`; False if one did."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        # The SDK retries a request whose answer was lost; if the write had landed, the retry
        # fails (412/409) against it. The token tells this write's own result from another's,
        # so a landed write is never taken twice.
        token = secrets.token_hex(8)
        operations: list[Any] = []
        for window, seen in zip(windows, known, strict=True):
            entity = {
                "PartitionKey": window.partition,
                "RowKey": window.row,
                "Count": (seen[0] if seen else 0) + step,
                "Token": token,
            }
            if seen is None:
                operations.append(("create", entity))
            else:
                conditions = {"etag": seen[1], "match_condition": MatchConditions.IfNotModified}
                operations.append(("update", entity, {"mode": UpdateMode.REPLACE, **conditions}))
        written: list[Any]
        try:
            with storage_errors():
                if submit is not None:
                    written = submit(operations)
                elif len(operations) == 1:
                    _, entity, *options = operations[0]
                    if options:
                        written = [self._table.update_entity(entity, **options[0])]
                    else:
                        written = [self._table.create_entity(entity)]
                else:
                    written = list(self._table.submit_transaction(operations))
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return self._refresh(windows, token)
        except TableTransactionError as failed:
            if submit is not None or failed.status_code not in (404, 409, 412):
                raise  # with `submit`, a failure of the steps the counters were written with
            return self._refresh(windows, token)
        with self._lock:
            for operation, metadata in zip(operations, written, strict=True):
                entity = operation[1]
                key = (entity["PartitionKey"], entity["RowKey"])
                self._known[key] = (entity["Count"], metadata["etag"])
        return True

    def _read(
        self, partition: str, rows: list[str], tokens: list[str] | None = None
    ) -> list[tuple[int, str] | None]:
        found: list[tuple[int, str] | None] = []
        for row in rows:
            with storage_errors():
                try:
                    entity = self._table.get_entity(partition, row)
                except ResourceNotFoundError:
                    found.append(None)
                    continue
            if tokens is not None:
                tokens.append(str(entity.get("Token", "")))
            found.append(self._remember(entity))
        return found

    def _read_partition(self, partition: str) -> None:
        with storage_errors():
            entities = list(self._table.query_entities(f"PartitionKey eq '{partition}'"))
        for entity in entities:
            self._remember(entity)

    def _remember(self, entity: Any) -> tuple[int, str]:
        seen = (int(entity["Count"]), str(entity.metadata["etag"]))
        with self._lock:
            if len(self._known) > 10_000:  # old windows pile up; forget them all
                self._known.clear()
            self._known[(entity["PartitionKey"], entity["RowKey"])] = seen
        return seen

    def _seen(self, partition: str, row: str) -> tuple[int, str] | None:
        with self._lock:
            return self._known.get((partition, row))

    def _refresh(self, windows: list[Window], token: str) -> bool:
        """A write failed on a conflict: read the rows. True if they hold this write after all
        (its answer was lost and the SDK's retry met it), False if another writer's."""
        tokens: list[str] = []
        seen = self._read(windows[0].partition, [w.row for w in windows], tokens)
        if len(tokens) == len(windows) and all(t == token for t in tokens):
            log.info("a counter write landed though its answer was lost")
            return True
        for window, known in zip(windows, seen, strict=True):
            if known is None:
                with self._lock:
                    self._known.pop((window.partition, window.row), None)
        return False


def _shard(index: int) -> str:
    return f"s{index:02d}"


_counters_by_table: dict[str, Counters] = {}
_counters_lock = threading.Lock()


def _counters(name: str) -> Counters:
    """The process's Counters of table `name` (tests change the tables' prefix)."""
    full_name = table(name).table_name
    with _counters_lock:
        counters = _counters_by_table.get(full_name)
        if counters is None:
            counters = _counters_by_table[full_name] = Counters(name)
        return counters
