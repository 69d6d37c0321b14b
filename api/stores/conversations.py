"""Conversations: each user's threads with the numbers they text, and replies routed to them.

A user who writes to a number from Ahoy's number becomes that number's owner for
CONVERSATION_DAYS; an SMS from the number (not an opt-out, opt-in or help keyword) lands in
the owner's thread instead of the admin inbox. Two users writing to one number: the later
send owns it (exact under concurrency: each user has their own route row with the time of
their latest send, and a reply goes to the latest of them; a tie goes to the greater caller
partition, so every reader picks the same one).

Tables:
- `routes`: partition = hash of the counterpart number; row = the caller's partition:
  `{Caller, At}`. One row per user who wrote to the number.
- `conversations`: partition = the caller's (as the ledger's):
  `thread-<number hash>` (the thread: its number, latest time, unread count, its `recent-`
  row), `recent-<13 digits counting down>-<number hash>` (the thread as the list shows it,
  newest activity first), `msg-<number hash>-<13 digits counting down>-<SID>` (a message,
  newest first), `seen-<SID>` (a message already kept: a replayed webhook changes nothing).
  A message is added in one entity-group transaction with its thread (conditional on the
  thread's ETag), so the list, the thread and its messages never disagree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from api.core import clock, pages
from api.core.errors import NotFound
from api.core.phone import mask
from api.core.settings import Settings
from api.stores import ledger
from api.stores.storage import (
    Expiry,
    ResourceModifiedError,
    ResourceNotFoundError,
    TableTransactionError,
    key_of,
    odata_time,
    row_key_prefix,
    storage_errors,
    table,
)

if TYPE_CHECKING:  # pydantic loads when a list is asked for, not with /api/voice's routing
    from api.core.models import ConversationMessagePage, ConversationPage

log = logging.getLogger("ahoy.conversations")

TABLE = "conversations"
ROUTES = "routes"
THREAD, RECENT, MESSAGE, SEEN = "thread-", "recent-", "msg-", "seen-"
MAX_BODY = 1600
_TICK = timedelta(milliseconds=1)


def expiries(now: datetime, settings: Settings) -> list[Expiry]:
    """Messages and threads for RETENTION_DAYS after their latest message; a route for
    CONVERSATION_DAYS after its user's latest send (no reply is routed by it after that)."""
    cutoff = odata_time(now - timedelta(days=settings.retention_days))
    routes_cutoff = odata_time(now - timedelta(days=settings.conversation_days))
    return [
        Expiry("conversation messages", TABLE, f"{row_key_prefix(MESSAGE)} and At lt {cutoff}"),
        Expiry("conversation markers", TABLE, f"{row_key_prefix(SEEN)} and At lt {cutoff}"),
        Expiry("threads", TABLE, f"{row_key_prefix(THREAD)} and LastAt lt {cutoff}"),
        Expiry("thread list rows", TABLE, f"{row_key_prefix(RECENT)} and LastAt lt {cutoff}"),
        Expiry("routes", ROUTES, f"At lt {routes_cutoff}"),
    ]


def partition_of(caller: str) -> str:
    """The caller's partition: the ledger's (one hash of the caller id for every store)."""
    return ledger.caller_partition(caller)


def _number_key(number: str) -> str:
    return key_of(number)


def _countdown(moment: datetime) -> str:
    return f"{10**13 - int(moment.timestamp() * 1000):013d}"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- routing -----------------------------------------------------------------------------


def claim(caller: str, number: str, at: datetime) -> None:
    """Record that `caller` wrote to `number` at `at` (their own route row)."""
    from azure.data.tables import UpdateMode

    entity = {
        "PartitionKey": _number_key(number),
        "RowKey": partition_of(caller),
        "Caller": caller,
        "At": at,
    }
    with storage_errors():
        table(ROUTES).upsert_entity(entity, mode=UpdateMode.REPLACE)


def owner_of(number: str, within_days: int) -> str | None:
    """The user who last wrote to `number` within `within_days`, if any."""
    since = clock.now() - timedelta(days=within_days)
    with storage_errors():
        rows = list(
            table(ROUTES).query_entities(
                "PartitionKey eq @number and At ge @since",
                parameters={"number": _number_key(number), "since": since},
            )
        )
    if not rows:
        return None
    latest = max(rows, key=lambda row: (row["At"], row["RowKey"]))
    return str(latest["Caller"])


PINNED = "pinned"  # a line's row in its number's partition (route rows are caller partitions)


def pin(line: str, caller: str) -> None:
    """Pin Ahoy's number `line` to `caller`: what reaches it goes to them (a user's own line)."""
    from azure.data.tables import UpdateMode

    entity = {"PartitionKey": _number_key(line), "RowKey": PINNED, "Caller": caller}
    with storage_errors():
        table(ROUTES).upsert_entity(entity, mode=UpdateMode.REPLACE)


def unpin(line: str) -> None:
    """Unpin `line`; NotFound when it is not pinned."""
    step = ("delete", {"PartitionKey": _number_key(line), "RowKey": PINNED})
    try:
        with storage_errors():
            table(ROUTES).submit_transaction([step])  # a plain delete hides a 404
    except TableTransactionError as failed:
        if failed.status_code != 404:
            raise
        raise NotFound("This number is not pinned to a user.") from None


def pinned_to(line: str) -> str | None:
    with storage_errors():
        try:
            return str(table(ROUTES).get_entity(_number_key(line), PINNED)["Caller"])
        except ResourceNotFoundError:
            return None


def recipient(line: str, sender: str, within_days: int) -> str | None:
    """Who what `sender` sends to Ahoy's `line` is for: the user the line is pinned to, else
    the user who last wrote to or called `sender` within `within_days`, else no one."""
    return pinned_to(line) or owner_of(sender, within_days)


# --- threads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    sid: str
    direction: str  # "in" (from the counterpart) or "out" (the user's)
    body: str
    recording: str | None = None  # a voicemail's RecordingSid (served by /api/recordings)


def add(caller: str, number: str, message: Message, known: Thread | None = None) -> bool:
    """Add `message` to the caller's thread with `number`; False if it was added before.
    `known` is the thread as read a moment ago (see `read_thread`): tried first, it saves a
    read."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    partition, number_key = partition_of(caller), _number_key(number)
    replace = {"mode": UpdateMode.REPLACE}
    gone = None  # a list row found missing (retention took it): not deleted again
    for _ in range(50):
        thread = known.entity if known is not None else _thread(partition, number_key)
        known = None
        at = clock.now()
        if thread is not None and at <= thread["LastAt"]:
            at = thread["LastAt"] + _TICK  # the thread's order is its messages' order
        unread = 0 if message.direction == "out" else (thread["Unread"] if thread else 0) + 1
        recent = f"{RECENT}{_countdown(at)}-{number_key}"
        summary = {
            "PartitionKey": partition,
            "Number": number,
            "LastAt": at,
            "Unread": unread,
        }
        steps: list[Any] = [
            ("create", {"PartitionKey": partition, "RowKey": SEEN + message.sid, "At": at}),
            (
                "create",
                {
                    "PartitionKey": partition,
                    "RowKey": f"{MESSAGE}{number_key}-{_countdown(at)}-{message.sid}",
                    "Number": number,
                    "Sid": message.sid,
                    "Direction": message.direction,
                    "Body": message.body[:MAX_BODY],
                    "Recording": message.recording or "",
                    "At": at,
                },
            ),
            (
                "upsert",
                {
                    **summary,
                    "RowKey": recent,
                    "LastSid": message.sid,
                    "LastDirection": message.direction,
                    "LastBody": message.body[:MAX_BODY],
                },
                replace,
            ),
        ]
        written = {**summary, "RowKey": THREAD + number_key, "Recent": recent}
        if thread is None:
            steps.append(("create", written))
        else:
            if thread["Recent"] not in (recent, gone):
                steps.append(("delete", {"PartitionKey": partition, "RowKey": thread["Recent"]}))
            condition = {
                **replace,
                "etag": thread.metadata["etag"],
                "match_condition": MatchConditions.IfNotModified,
            }
            steps.append(("update", written, condition))
        try:
            with storage_errors():
                table(TABLE).submit_transaction(steps)
        except TableTransactionError as failed:
            if failed.index == 0 and failed.status_code == 409:
                return False  # a replay: this SID is kept already
            if failed.index == 3 and failed.status_code == 404 and len(steps) == 5:
                gone = thread["Recent"]  # or another message moved it first: read again
            elif failed.status_code not in (404, 409, 412):
                raise
            continue  # another message reached the thread first: again, on a fresh read
        log.info("conversation message %s %s", message.direction, mask(number))
        return True
    raise ResourceModifiedError("conversation thread kept changing")


@dataclass(frozen=True)
class Thread:
    """A thread row as read (None: there was none), for `add`."""

    entity: Any


def read_thread(caller: str, number: str) -> Thread:
    return Thread(_thread(partition_of(caller), _number_key(number)))


def mark_read(caller: str, number: str) -> None:
    """Set the thread's unread count to 0; NotFound when the caller has no such thread."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    partition, number_key = partition_of(caller), _number_key(number)
    with_recent = True
    for _ in range(50):
        thread = _thread(partition, number_key)
        if thread is None:
            raise NotFound("No conversation with this number.")
        if thread["Unread"] == 0:
            return
        condition = {
            "mode": UpdateMode.MERGE,
            "etag": thread.metadata["etag"],
            "match_condition": MatchConditions.IfNotModified,
        }
        steps: list[Any] = [("update", {**_keys(thread), "Unread": 0}, condition)]
        if with_recent:
            recent = {"PartitionKey": partition, "RowKey": thread["Recent"], "Unread": 0}
            steps.append(("update", recent, {"mode": UpdateMode.MERGE}))
        try:
            with storage_errors():
                table(TABLE).submit_transaction(steps)
        except TableTransactionError as failed:
            if failed.index == 1 and failed.status_code == 404:
                with_recent = False  # retention took the list row first
            elif failed.status_code != 412:
                raise
            continue
        return
    raise ResourceModifiedError("conversation thread kept changing")


def list_threads(caller: str, page_size: int, continuation: str | None) -> ConversationPage:
    """The caller's threads, the one with the newest message first."""
    from api.core.models import Conversation, ConversationMessage, ConversationPage

    items, token = _page(caller, RECENT, page_size, continuation)
    threads = [
        Conversation(
            number=item["Number"],
            unread=item["Unread"],
            last_message=ConversationMessage(
                sid=item["LastSid"],
                direction=item["LastDirection"],
                body=item["LastBody"],
                at=_iso(item["LastAt"]),
            ),
        )
        for item in items
    ]
    return ConversationPage(items=threads, next=pages.encode(token))


def list_messages(
    caller: str, number: str, page_size: int, continuation: str | None
) -> ConversationMessagePage:
    """The messages of the caller's thread with `number`, both ways, newest first."""
    from api.core.models import ConversationMessage, ConversationMessagePage

    prefix = f"{MESSAGE}{_number_key(number)}-"
    items, token = _page(caller, prefix, page_size, continuation)
    messages = [
        ConversationMessage(
            sid=item["Sid"],
            direction=item["Direction"],
            body=item["Body"],
            at=_iso(item["At"]),
            recording_sid=item.get("Recording") or None,
        )
        for item in items
    ]
    return ConversationMessagePage(items=messages, next=pages.encode(token))


def _page(
    caller: str, prefix: str, page_size: int, continuation: str | None
) -> tuple[list[Any], Any]:
    start: Any = pages.decode(continuation)
    parameters = {
        "partition": partition_of(caller),
        "first": prefix,
        "last": prefix[:-1] + chr(ord(prefix[-1]) + 1),
    }
    with storage_errors():
        found: Any = (
            table(TABLE)
            .query_entities(
                "PartitionKey eq @partition and RowKey ge @first and RowKey lt @last",
                parameters=parameters,
                results_per_page=page_size,
            )
            .by_page(continuation_token=start)
        )
        return list(next(found, [])), found.continuation_token


def _thread(partition: str, number_key: str) -> Any:
    with storage_errors():
        try:
            return table(TABLE).get_entity(partition, THREAD + number_key)
        except ResourceNotFoundError:
            return None


def _keys(entity: Any) -> dict[str, str]:
    return {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"]}
