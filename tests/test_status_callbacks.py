"""POST /api/status: Twilio's callbacks move what GET shows, idempotently and never backwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from api.edge.app_routes import get_call, get_message, make_call, send_sms
from api.edge.twilio_routes import status
from tests.support.func_requests import problem, request, signed
from tests.support.settings import ACCOUNT_SID, CALLS_URL, MESSAGES_URL
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_call, twilio_message

TO = "+14155551234"
SMS_SID = "SM" + "a" * 32
CALL_SID = "CA" + "b" * 32


@pytest.fixture
def message_ref(twilio: responses.RequestsMock) -> str:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    send_sms(request("POST", "/api/sendSms", json_body={"to": TO, "body": "hi"}))
    [row] = ledger_rows()
    return str(row.ref)


@pytest.fixture
def call_ref(twilio: responses.RequestsMock) -> str:
    twilio.post(CALLS_URL, json=twilio_call(), status=201)
    make_call(request("POST", "/api/makeCall", json_body={"to": TO, "message": "hi"}))
    [row] = ledger_rows()
    return str(row.ref)


def message_callback(ref: str, state: str, **extra: str) -> int:
    form = [
        ("MessageSid", SMS_SID),
        ("MessageStatus", state),
        ("AccountSid", ACCOUNT_SID),
        ("To", TO),
        *extra.items(),
    ]
    response = status(signed("POST", f"/api/status?ref={ref}", form))
    return int(response.status_code)


def call_callback(ref: str, state: str, sequence: int) -> int:
    form = [
        ("CallSid", CALL_SID),
        ("CallStatus", state),
        ("SequenceNumber", str(sequence)),
        ("AccountSid", ACCOUNT_SID),
    ]
    return int(status(signed("POST", f"/api/status?ref={ref}", form)).status_code)


def message_view() -> dict[str, Any]:
    req = request("GET", f"/api/messages/{SMS_SID}", route_params={"sid": SMS_SID})
    body: dict[str, Any] = json.loads(get_message(req).get_body())
    return body


def test_a_callback_changes_what_get_shows(message_ref: str) -> None:
    assert message_callback(message_ref, "sent") == 204
    assert message_callback(message_ref, "delivered") == 204
    view = message_view()
    assert view["status"] == "delivered"
    assert [h["status"] for h in view["history"]] == ["queued", "sent", "delivered"]


def test_out_of_order_and_repeated_callbacks_never_go_backwards(message_ref: str) -> None:
    for state in ("delivered", "sent", "delivered", "sending", "sent"):
        assert message_callback(message_ref, state) == 204
    view = message_view()
    assert view["status"] == "delivered"
    assert sorted(h["status"] for h in view["history"]) == [
        "delivered",
        "queued",
        "sending",
        "sent",
    ]


def test_the_first_terminal_status_wins_but_read_follows_delivered(message_ref: str) -> None:
    message_callback(message_ref, "undelivered", ErrorCode="30003")
    message_callback(message_ref, "delivered")
    assert (message_view()["status"], message_view()["errorCode"]) == ("undelivered", 30003)


def test_read_follows_delivered(message_ref: str) -> None:
    message_callback(message_ref, "delivered")
    message_callback(message_ref, "read")
    assert message_view()["status"] == "read"


def test_call_events_in_any_order_keep_the_furthest(call_ref: str) -> None:
    for state, sequence in (("completed", 3), ("ringing", 1), ("initiated", 0), ("in-progress", 2)):
        assert call_callback(call_ref, state, sequence) == 204
    req = request("GET", f"/api/calls/{CALL_SID}", route_params={"sid": CALL_SID})
    view = json.loads(get_call(req).get_body())
    assert view["status"] == "completed"
    assert [h["status"] for h in view["history"]] == [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]


def test_unsigned_callbacks_are_403_and_change_nothing(message_ref: str) -> None:
    form = "MessageSid=" + SMS_SID + "&MessageStatus=delivered"
    req = request(
        "POST",
        f"/api/status?ref={message_ref}",
        body=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        caller=None,
    )
    assert status(req).status_code == 403
    assert message_view()["status"] == "queued"


@pytest.mark.parametrize(
    ("ref", "form", "field"),
    [
        ("nope", [("MessageSid", SMS_SID), ("MessageStatus", "sent")], "ref"),
        ("0" * 32, [("MessageSid", "SM123"), ("MessageStatus", "sent")], "MessageSid"),
        ("0" * 32, [("MessageSid", SMS_SID), ("MessageStatus", "<b>")], "status"),
        (
            "0" * 32,
            [("CallSid", CALL_SID), ("CallStatus", "ringing"), ("SequenceNumber", "x")],
            "SequenceNumber",
        ),
    ],
)
def test_signed_but_malformed_fields_are_422(
    ref: str, form: list[tuple[str, str]], field: str
) -> None:
    response = status(signed("POST", f"/api/status?ref={ref}", form))
    assert response.status_code == 422
    assert field in [e["field"] for e in problem(response)["errors"]]


@pytest.mark.usefixtures("storage")
def test_a_callback_for_an_unknown_row_is_404() -> None:
    response = status(
        signed(
            "POST",
            f"/api/status?ref={'0' * 32}",
            [("MessageSid", SMS_SID), ("MessageStatus", "sent")],
        )
    )
    assert response.status_code == 404


def test_a_callback_about_another_sid_changes_nothing(message_ref: str) -> None:
    form = [("MessageSid", "SM" + "9" * 32), ("MessageStatus", "delivered")]
    assert status(signed("POST", f"/api/status?ref={message_ref}", form)).status_code == 204
    assert message_view()["status"] == "queued"
