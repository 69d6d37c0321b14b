"""Webhook effects happen once per Twilio event, and the SMS auto-reply is no amplifier for
strangers: it passes the destination policy, counts against the limits, and stays silent for
the opt-out, opt-in and help keywords in any spelling."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import responses

from api.edge.twilio_routes import flow_step, incoming_call, incoming_sms
from api.services.inbound import is_keyword
from api.stores.storage import table
from tests.support.func_requests import signed
from tests.support.settings import MESSAGES_URL
from tests.support.twilio_api import RECORDING, twilio_message

pytestmark = pytest.mark.usefixtures("storage")
REPLY = "<Message>Thanks, we got it.</Message>"


def items() -> list[dict[str, object]]:
    return [e for e in table("inbox").list_entities() if e["RowKey"][0].isdigit()]


def sms(sid: int, sender: str = "+14155550177", body: str = "hello") -> str:
    form = [
        ("MessageSid", f"SM{sid:032x}"),
        ("From", sender),
        ("To", "+14155550100"),
        ("Body", body),
    ]
    return incoming_sms(signed("POST", "/api/incomingSms", form)).get_body().decode()


@pytest.fixture
def replies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCOMING_SMS_REPLY", "Thanks, we got it.")


def test_a_replayed_voicemail_is_kept_and_notified_once(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    query = urlencode({"mode": "voicemail", "NotifyNumber": "+14155550123"})
    for _ in range(5):  # Twilio retries webhooks; anyone holding a signed request can replay it
        response = flow_step(
            signed("POST", f"/api/flowStep?step=voicemail-saved&{query}", RECORDING)
        )
        assert response.status_code == 200
    assert len(items()) == 1
    assert len(twilio.calls) == 1  # one notification SMS


def test_a_replayed_inbound_call_is_kept_once_and_answered_each_time() -> None:
    call = [("CallSid", "CA" + "7" * 32), ("From", "+14155550177"), ("To", "+14155550100")]
    answers = {
        incoming_call(signed("POST", "/api/incomingCall", call)).get_body() for _ in range(3)
    }
    assert len(answers) == 1  # Twilio needs its TwiML every time
    assert len(items()) == 1


@pytest.mark.usefixtures("replies")
def test_a_replayed_inbound_sms_is_kept_and_answered_once() -> None:
    assert REPLY in sms(1)
    assert REPLY not in sms(1)
    assert REPLY not in sms(1)
    assert len(items()) == 1


@pytest.mark.usefixtures("replies")
@pytest.mark.parametrize(
    "sender", ["+19005550100", "+447400123456", "+881612345678", "+15005550006"]
)
def test_no_auto_reply_outside_the_destination_policy(sender: str) -> None:
    assert REPLY not in sms(2, sender=sender)


@pytest.mark.usefixtures("replies")
def test_auto_replies_count_against_the_apps_daily_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOBAL_DAILY_CAP", "1")
    assert REPLY in sms(3, sender="+14155550177")
    assert REPLY not in sms(4, sender="+14155550178")


@pytest.mark.usefixtures("replies")
def test_auto_replies_are_limited_per_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION_LIMIT_PER_HOUR", "1")
    assert REPLY in sms(5)
    assert REPLY not in sms(6)  # the same sender again this hour
    assert REPLY in sms(7, sender="+14155550178")
    assert len(items()) == 3  # every message is kept, replied or not


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        " Stop. ",
        "OPTOUT",
        "revoke",
        "ＳＴＯＰ",
        "Unsubscribe!",
        "start",
        "YES",
        "info?",
        "STOPALL",
    ],
)
def test_keywords_are_recognised_as_carriers_do(body: str) -> None:
    assert is_keyword(body)


@pytest.mark.parametrize("body", ["stop it please", "help me", "stopper", ""])
def test_other_messages_are_not_keywords(body: str) -> None:
    assert not is_keyword(body)


@pytest.mark.usefixtures("replies")
def test_no_auto_reply_to_a_keyword() -> None:
    assert REPLY not in sms(8, body="Stop.")
    assert json.dumps(items()[0]["Body"]) == '"Stop."'
