"""Twilio's REST resources and error bodies as Twilio returns them, for `responses` mocks."""

from __future__ import annotations

from typing import Any

from tests.support.settings import ACCOUNT_SID, FROM_NUMBER


def twilio_message(**overrides: Any) -> dict[str, Any]:
    """A Messages resource as Twilio returns it."""
    resource = {
        "sid": "SM" + "a" * 32,
        "account_sid": ACCOUNT_SID,
        "status": "queued",
        "to": "+14155551234",
        "from": FROM_NUMBER,
        "body": "ahoy hoy",
        "direction": "outbound-api",
        "date_created": "Sat, 28 Nov 2026 00:00:00 +0000",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'a' * 32}.json",
    }
    resource.update(overrides)
    return resource


def twilio_call(**overrides: Any) -> dict[str, Any]:
    """A Calls resource as Twilio returns it."""
    resource = {
        "sid": "CA" + "b" * 32,
        "account_sid": ACCOUNT_SID,
        "status": "queued",
        "to": "+14155551234",
        "from": FROM_NUMBER,
        "direction": "outbound-api",
        "date_created": "Sat, 28 Nov 2026 00:00:00 +0000",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA{'b' * 32}.json",
    }
    resource.update(overrides)
    return resource


def twilio_error(status: int, code: int, message: str = "refused") -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


# The form of a <Record> action callback: a voicemail of CallSid CA11… from +14155550177.
RECORDING = [
    ("CallSid", "CA" + "1" * 32),
    ("From", "+14155550177"),
    ("To", "+14155550100"),
    ("RecordingSid", "RE" + "2" * 32),
    ("RecordingUrl", "https://api.twilio.com/recordings/RE" + "2" * 32),
]
