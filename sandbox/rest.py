"""Twilio's REST API for Messages and Calls, as its published description has it.

Create, fetch, update, delete and list (with every filter ListMessage and ListCall define, and
Twilio's paging: PageSize 1-1000, Page, PageToken, the whole envelope). Requests are checked
as Twilio checks them: a malformed integer, enum, SID, date or number is a 400 with Twilio's
error body, never a dropped connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sandbox.outbox import API_VERSION, Call, Message, Outbox, units

Form = dict[str, list[str]]

# Twilio's documented test numbers, per channel (the test-credentials page).
MESSAGE_TO_ERRORS = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' "
        "number.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient."),
    "+15005550009": (21614, "'To' number is not a valid mobile number."),
}
NOT_MESSAGE_CAPABLE = (
    "The 'From' phone number provided is not a valid message-capable Twilio phone number for "
    "this destination/account."
)
MESSAGE_FROM_ERRORS = {
    "+15005550001": (21212, "The 'From' number +15005550001 is not a valid phone number."),
    "+15005550007": (21606, NOT_MESSAGE_CAPABLE),
    "+15005550008": (
        21611,
        "This 'From' number has exceeded the maximum number of queued messages.",
    ),
}
CALL_TO_ERRORS = {
    "+15005550001": (21217, "Phone number does not appear to be valid."),
    "+15005550002": (21214, "'To' phone number cannot be reached."),
    "+15005550003": (21215, "Account not authorized to call +15005550003."),
    "+15005550004": (21216, "Call blocked by Twilio blocklist."),
}
CALL_FROM_ERRORS = {
    "+15005550001": (21212, "The 'From' number +15005550001 is not a valid phone number."),
}

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_MESSAGE_TO = re.compile(r"^(?:(?:whatsapp|messenger):)?\+[1-9][0-9]{1,14}$")
_CALL_TO = re.compile(r"^(?:\+[1-9][0-9]{1,14}|client:[A-Za-z0-9_.@-]{1,256}|sip:\S{3,256})$")
_DIGITS = re.compile(r"^[0-9]{1,9}$")
CALL_STATUSES = {
    "queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled",
}  # fmt: skip
CALL_EVENTS = {"initiated", "ringing", "answered", "completed"}
DEFAULT_PAGE_SIZE = 50
_PAGING = {"PageSize", "Page", "PageToken"}


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def invalid(name: str, value: str) -> ApiError:
    return ApiError(400, 20001, f"Invalid {name}: {value!r}")


def one(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def integer(form: Form, name: str, default: int) -> int:
    value = one(form, name)
    if value is None or value == "":
        return default
    if not _DIGITS.match(value):  # ASCII digits only: int() would take "²" and "١"
        raise invalid(name, value)
    return int(value)


def choice(form: Form, name: str, allowed: set[str], default: str | None = None) -> str | None:
    value = one(form, name)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise invalid(name, value)
    return value


def sid(form: Form, name: str, prefix: str) -> str | None:
    value = one(form, name)
    if value is not None and not re.fullmatch(prefix + "[0-9a-fA-F]{32}", value):
        raise invalid(name, value)
    return value


def method(form: Form, name: str) -> str:
    return (choice(form, name, {"GET", "POST", "get", "post"}) or "POST").upper()


def moment(form: Form, name: str) -> datetime | None:
    """A date filter's value: `YYYY-MM-DD` (its midnight, UTC) or an ISO 8601 date-time (what
    twilio-python sends, for dates too: `2026-11-30T00:00:00Z`)."""
    value = one(form, name)
    if value is None or value == "":
        return None
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(name, value) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def within(when: datetime | None, form: Form, name: str) -> bool:
    """`when` passes the filters `name` (that day, UTC), `name<` (at or before) and `name>`
    (at or after), as ListMessage and ListCall define them."""
    tests: list[tuple[str, Callable[[datetime, datetime], bool]]] = [
        (name, lambda a, b: a.date() == b.date()),
        (name + "<", lambda a, b: a <= b),
        (name + ">", lambda a, b: a >= b),
    ]
    for param, test in tests:
        bound = moment(form, param)
        if bound is not None and (when is None or not test(when, bound)):
            return False
    return True


def page(resources: list[Message] | list[Call], key: str, path: str, query: Form) -> dict[str, Any]:
    """One page of `resources` (filtered, newest first) in Twilio's list envelope."""
    size = integer(query, "PageSize", DEFAULT_PAGE_SIZE)
    if size > 1000:
        raise ApiError(400, 20007, "Page size too large: the maximum page size is 1000.")
    if size < 1:
        raise invalid("PageSize", str(size))
    number = integer(query, "Page", 0)
    token = one(query, "PageToken")
    sids = [r.sid for r in resources]
    if token:
        match = re.fullmatch(r"P([AB])((?:SM|MM|CA)[0-9a-f]{32})", token)
        if match is None or match[2] not in sids:
            raise ApiError(400, 21481, "Invalid PageToken.")
        at = sids.index(match[2])
        start = at + 1 if match[1] == "A" else max(0, at - size)
    else:
        start = number * size
    chosen = resources[start : start + size]
    filters = [(k, v) for k, values in query.items() for v in values if k not in _PAGING]

    def uri(page_number: int, page_token: str | None) -> str:
        params = [*filters, ("PageSize", str(size)), ("Page", str(page_number))]
        if page_token:
            params.append(("PageToken", page_token))
        return f"{path}?{urlencode(params)}"

    more = start + size < len(resources)
    return {
        key: [r.to_json() for r in chosen],
        "end": start + len(chosen) - 1 if chosen else start,
        "first_page_uri": uri(0, None),
        "next_page_uri": uri(number + 1, "PA" + chosen[-1].sid) if more and chosen else None,
        "page": number,
        "page_size": size,
        "previous_page_uri": (
            uri(number - 1, "PB" + chosen[0].sid) if number > 0 and chosen else None
        ),
        "start": start,
        "uri": uri(number, token),
    }


def list_messages(outbox: Outbox, path: str, query: Form) -> dict[str, Any]:
    to, from_ = one(query, "To"), one(query, "From")
    for name in ("DateSent", "DateSent<", "DateSent>"):
        moment(query, name)  # malformed dates are refused even when nothing matches
    with outbox.lock:
        everything = list(reversed(list(outbox.messages.values())))
    found = [
        m
        for m in everything
        if (to is None or m.to == to)
        and (from_ is None or m.from_ == from_)
        and within(m.sent, query, "DateSent")
    ]
    return page(found, "messages", path, query)


def list_calls(outbox: Outbox, path: str, query: Form) -> dict[str, Any]:
    to, from_ = one(query, "To"), one(query, "From")
    parent = sid(query, "ParentCallSid", "CA")
    status = choice(query, "Status", CALL_STATUSES)
    for name in ("StartTime", "StartTime<", "StartTime>", "EndTime", "EndTime<", "EndTime>"):
        moment(query, name)
    with outbox.lock:
        everything = list(reversed(list(outbox.calls.values())))
    found = [
        c
        for c in everything
        if (to is None or c.to == to)
        and (from_ is None or c.from_ == from_)
        and (parent is None or c.parent_call_sid == parent)
        and (status is None or c.status == status)
        and within(c.started, query, "StartTime")
        and within(c.ended, query, "EndTime")
    ]
    return page(found, "calls", path, query)


def check_message_request(form: Form, owned: frozenset[str]) -> None:
    """What CreateMessage refuses before anything is queued (`owned`: the account's numbers)."""
    to, from_ = one(form, "To"), one(form, "From")
    service = sid(form, "MessagingServiceSid", "MG")
    body, media = one(form, "Body") or "", form.get("MediaUrl", [])
    if not to:
        raise ApiError(400, 21604, "A 'To' phone number is required.")
    if not from_ and not service:
        raise ApiError(400, 21603, "A 'From' phone number is required.")
    if not body and not media:
        raise ApiError(400, 21602, "Message body is required.")
    if units(body) > 1600:
        raise ApiError(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    if not _MESSAGE_TO.match(to):
        raise ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if from_ is not None and not _E164.match(from_):
        raise ApiError(400, 21212, f"The 'From' number {from_} is not a valid phone number.")
    if from_ in MESSAGE_FROM_ERRORS:
        raise ApiError(400, *MESSAGE_FROM_ERRORS[from_])
    if to in MESSAGE_TO_ERRORS:
        raise ApiError(400, *MESSAGE_TO_ERRORS[to])
    if from_ is not None and from_ not in owned:
        raise ApiError(400, 21606, NOT_MESSAGE_CAPABLE)


def check_call_request(form: Form, owned: frozenset[str]) -> None:
    """What CreateCall refuses before anything is queued (`owned`: the account's numbers)."""
    to, from_ = one(form, "To"), one(form, "From")
    if not to:
        raise ApiError(400, 21201, "No 'To' number is specified.")
    if not from_:
        raise ApiError(400, 21213, "No 'From' number is specified.")
    if not one(form, "Url") and not one(form, "Twiml") and not one(form, "ApplicationSid"):
        raise ApiError(400, 21205, "Url parameter is required.")
    if not _CALL_TO.match(to):
        raise ApiError(400, 21217, "Phone number does not appear to be valid.")
    if not _E164.match(from_) and not from_.startswith("client:"):
        raise ApiError(400, 21212, f"The 'From' number {from_} is not a valid phone number.")
    if from_ in CALL_FROM_ERRORS:
        raise ApiError(400, *CALL_FROM_ERRORS[from_])
    if to in CALL_TO_ERRORS:
        raise ApiError(400, *CALL_TO_ERRORS[to])
    if from_ not in owned and not from_.startswith("client:"):
        raise ApiError(
            400,
            21210,
            f"The source phone number provided, {from_}, is not yet verified for your account.",
        )
    events = set(form.get("StatusCallbackEvent", []))
    for event in " ".join(events).split():
        if event not in CALL_EVENTS:
            raise invalid("StatusCallbackEvent", event)
    integer(form, "TimeLimit", 14_400)
    integer(form, "Timeout", 60)
    method(form, "Method")
    method(form, "StatusCallbackMethod")


def resource_path(account: str, kind: str) -> str:
    return f"/{API_VERSION}/Accounts/{account}/{kind}.json"


SCHEDULE_WINDOW = (timedelta(seconds=900), timedelta(days=35))  # Twilio's, inclusive


def schedule(form: Form, now: datetime) -> datetime | None:
    """When a scheduled message is to be sent (ScheduleType=fixed), checked as Twilio checks
    it: SendAt present (35111), a Messaging Service (35118), 15 minutes to 35 days ahead
    (35114)."""
    kind = choice(form, "ScheduleType", {"fixed"})
    if kind is None:
        return None
    raw = one(form, "SendAt")
    if not raw:
        raise ApiError(400, 35111, "SendAt timestamp is missing.")
    if not one(form, "MessagingServiceSid"):
        raise ApiError(400, 35118, "MessagingServiceSid is required to schedule a message.")
    try:
        send_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid("SendAt", raw) from None
    if send_at.tzinfo is None:
        raise invalid("SendAt", raw)
    if not SCHEDULE_WINDOW[0] <= send_at - now <= SCHEDULE_WINDOW[1]:
        raise ApiError(
            400,
            35114,
            "SendAt time must be between 900 seconds and 35 days (3024000 seconds) in the "
            "future, inclusive.",
        )
    return send_at
