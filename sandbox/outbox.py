"""What the sandbox holds: the messages and calls created through its REST API.

Resources are kept in memory (a sandbox is for one local run) and rendered exactly as Twilio's
published description of the 2010-04-01 API has them: every property present (null when
empty), no other, RFC 2822 dates. What only the outbox page shows (each resource's history and
what a callee heard) is kept beside the resource and served by a sandbox-own endpoint.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"

# GSM 03.38: the basic set (one unit each) and its extension (an escape and the character).
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = set("^{}\\[~]|€\f")


def twilio_date(moment: datetime) -> str:
    """Twilio's date format: `Sat, 28 Nov 2026 01:30:20 +0000`."""
    return format_datetime(moment, usegmt=False).replace("-0000", "+0000")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def is_gsm7(body: str) -> bool:
    return all(c in _GSM7 or c in _GSM7_EXTENSION for c in body)


def units(body: str) -> int:
    """`body`'s length as Twilio counts it (segments, and the 1,600 limit of error 21617):
    GSM-7 septets (an extension character is two) or, for any other text, UTF-16 units."""
    if is_gsm7(body):
        return sum(2 if c in _GSM7_EXTENSION else 1 for c in body)
    return len(body.encode("utf-16-le")) // 2


def num_segments(body: str) -> int:
    """How many SMS a body is sent as: GSM-7 (160, or 153 per part) when every character is
    in the GSM-7 alphabet, else UCS-2 (70, or 67 per part, counted in UTF-16 units)."""
    single, part = (160, 153) if is_gsm7(body) else (70, 67)
    count = units(body)
    return 1 if count <= single else -(-count // part)


def _date(moment: datetime | None) -> str | None:
    return twilio_date(moment) if moment is not None else None


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    media_urls: list[str]
    status_callback: str | None
    status_callback_method: str = "POST"
    direction: str = "outbound-api"  # "outbound-call" when a <Message> in a call sent it
    status: str = "queued"
    error_code: int | None = None
    error_message: str | None = None
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)
    sent: datetime | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    send_at: datetime | None = None  # a scheduled message: sent then, by the sandbox's clock

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        base = self.uri.removesuffix(".json")
        return {
            "body": self.body,
            "num_segments": str(num_segments(self.body)),
            "direction": self.direction,
            "from": self.from_,
            "to": self.to,
            "date_updated": twilio_date(self.updated),
            "price": None,
            "error_message": self.error_message,
            "uri": self.uri,
            "account_sid": self.account_sid,
            "num_media": str(len(self.media_urls)),
            "status": self.status,
            "messaging_service_sid": self.messaging_service_sid,
            "sid": self.sid,
            "date_sent": _date(self.sent),
            "date_created": twilio_date(self.created),
            "error_code": self.error_code,
            "price_unit": "USD",
            "api_version": API_VERSION,
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
        }


@dataclass
class Call:
    sid: str
    account_sid: str
    to: str
    from_: str
    url: str | None
    twiml: str | None
    method: str
    status_callback: str | None
    status_callback_method: str
    status_callback_events: set[str]
    time_limit: int
    parent_call_sid: str | None = None
    fallback_url: str | None = None  # fetched when the call's own TwiML could not be
    direction: str = "outbound-api"
    status: str = "queued"
    duration: int | None = None
    paused: int = 0  # seconds of <Pause> played, counted into the duration
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)
    started: datetime | None = None
    ended: datetime | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    # Set by UpdateCall while the call is live; the player acts on them at once.
    redirect: tuple[str | None, str | None, str] | None = None  # (url, twiml, method)
    hangup_requested: bool = False
    interrupt: threading.Event = field(default_factory=threading.Event)

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"

    @property
    def live(self) -> bool:
        return self.status in ("queued", "ringing", "in-progress")

    def to_json(self) -> dict[str, Any]:
        base = self.uri.removesuffix(".json")
        return {
            "sid": self.sid,
            "date_created": twilio_date(self.created),
            "date_updated": twilio_date(self.updated),
            "parent_call_sid": self.parent_call_sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "phone_number_sid": None,
            "status": self.status,
            "start_time": _date(self.started),
            "end_time": _date(self.ended),
            "duration": str(self.duration) if self.duration is not None else None,
            "price": None,
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": None,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": self.uri,
            "subresource_uris": {
                name: f"{base}/{name.title().replace('_', '')}.json"
                for name in (
                    "feedback",
                    "notifications",
                    "recordings",
                    "streams",
                    "payments",
                    "siprec",
                    "events",
                    "transcriptions",
                    "user_defined_messages",
                    "user_defined_message_subscriptions",
                )
            },
        }


@dataclass
class Recording:
    """A recording a <Record> made; its audio is `silent_mp3()` (served with basic auth)."""

    sid: str
    account_sid: str
    call_sid: str
    duration: int
    created: datetime = field(default_factory=now)

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{self.sid}"


def silent_mp3(seconds: int = 1) -> bytes:
    """MPEG-1 Layer III frames of silence: 128 kbit/s, 44.1 kHz, mono, 417 bytes each (a
    header, then zeros: no side information, no audio data). Players take it as audio."""
    frame = bytes([0xFF, 0xFB, 0x90, 0xC0]) + bytes(413)
    return frame * (38 * seconds)


@dataclass(frozen=True)
class Fate:
    """How the next message or call to a number ends (set through /sandbox/fates)."""

    status: str  # messages: undelivered, failed; calls: busy, no-answer, failed
    error_code: int | None = None


class Outbox:
    """Every message and call of this sandbox, newest last; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: dict[str, Message] = {}
        self.calls: dict[str, Call] = {}
        self.key_presses: dict[str, list[str]] = {}  # per destination: what the callee presses
        self.fates: dict[tuple[str, str], list[Fate]] = {}  # (kind, to): the next ones' ends
        self.recordings: dict[str, Recording] = {}
        self.client_answers: dict[str, list[bool]] = {}  # per app identity: does it answer

    def add_message(self, message: Message) -> None:
        with self.lock:
            self.messages[message.sid] = message
            message.history.append({"status": message.status, "at": twilio_date(now())})

    def add_call(self, call: Call) -> None:
        with self.lock:
            self.calls[call.sid] = call
            call.history.append({"status": call.status, "at": twilio_date(now())})

    def move(self, resource: Message | Call, status: str, *, shown: bool = True) -> None:
        """`resource` reaches `status`; `shown=False` for a step only callbacks tell (a
        call's `initiated`, which its resource never shows)."""
        with self.lock:
            moment = now()
            if shown:
                resource.status = status
                resource.updated = moment
            resource.history.append({"status": status, "at": twilio_date(moment)})

    def touch(self, resource: Message | Call) -> None:
        with self.lock:
            resource.updated = now()

    def next_key_press(self, to: str) -> str | None:
        with self.lock:
            presses = self.key_presses.get(to)
            return presses.pop(0) if presses else None

    def next_client_answer(self, identity: str) -> bool:
        """Whether the app of `identity` answers its next ring (it does, unless told)."""
        with self.lock:
            answers = self.client_answers.get(identity)
            return answers.pop(0) if answers else True

    def next_fate(self, kind: str, to: str) -> Fate | None:
        with self.lock:
            fates = self.fates.get((kind, to))
            return fates.pop(0) if fates else None

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """What the outbox page shows: each resource, its history and, for calls, what the
        callee heard (sandbox-own: not in Twilio's resources)."""
        with self.lock:
            return {
                "messages": [
                    {**m.to_json(), "history": list(m.history)}
                    for m in reversed(list(self.messages.values()))
                ],
                "calls": [
                    {**c.to_json(), "history": list(c.history), "transcript": list(c.transcript)}
                    for c in reversed(list(self.calls.values()))
                ],
                "recordings": [
                    {
                        "sid": r.sid,
                        "call_sid": r.call_sid,
                        "duration": r.duration,
                        "date_created": twilio_date(r.created),
                        "uri": r.uri,
                    }
                    for r in reversed(list(self.recordings.values()))
                ],
            }
