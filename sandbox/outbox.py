"""What the sandbox holds: the messages and calls created through its REST API.

Resources are kept in memory (a sandbox is for one local run) and rendered in Twilio's JSON
shapes: snake_case fields, RFC 2822 dates, `uri`.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"


def twilio_date(moment: datetime) -> str:
    """Twilio's date format: `Sat, 28 Nov 2026 01:30:20 +0000`."""
    return format_datetime(moment, usegmt=False).replace("-0000", "+0000")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


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
    status: str = "queued"
    error_code: int | None = None
    created: datetime = field(default_factory=now)
    history: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": twilio_date(self.created),
            "date_updated": twilio_date(now()),
            "date_sent": twilio_date(self.created) if self.status != "queued" else None,
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": str(max(1, -(-len(self.body) // 160))),
            "price": None,
            "price_unit": "USD",
            "status": self.status,
            "to": self.to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json",
            "history": self.history,  # not Twilio's: the outbox page shows it
        }


@dataclass
class Call:
    sid: str
    account_sid: str
    to: str
    from_: str
    url: str
    method: str
    status_callback: str | None
    status_callback_events: set[str]
    time_limit: int
    status: str = "queued"
    duration: int = 0
    created: datetime = field(default_factory=now)
    history: list[dict[str, str]] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "date_created": twilio_date(self.created),
            "date_updated": twilio_date(now()),
            "direction": "outbound-api",
            "duration": str(self.duration) if self.status == "completed" else None,
            "from": self.from_,
            "status": self.status,
            "to": self.to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json",
            "history": self.history,  # not Twilio's: the outbox page shows it
            "transcript": self.transcript,  # what the callee heard
        }


class Outbox:
    """Every message and call of this sandbox, newest last; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: dict[str, Message] = {}
        self.calls: dict[str, Call] = {}
        self.key_presses: dict[str, list[str]] = {}  # per destination: what the callee presses

    def add_message(self, message: Message) -> None:
        with self.lock:
            self.messages[message.sid] = message
            message.history.append({"status": message.status, "at": twilio_date(now())})

    def add_call(self, call: Call) -> None:
        with self.lock:
            self.calls[call.sid] = call

    def move(self, resource: Message | Call, status: str) -> None:
        with self.lock:
            resource.status = status
            resource.history.append({"status": status, "at": twilio_date(now())})

    def next_key_press(self, to: str) -> str | None:
        with self.lock:
            presses = self.key_presses.get(to)
            return presses.pop(0) if presses else None

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return {
                "messages": [m.to_json() for m in reversed(list(self.messages.values()))],
                "calls": [c.to_json() for c in reversed(list(self.calls.values()))],
            }
