"""Opt-outs: STOP is honoured before Twilio is asked, START clears it, Twilio's 21610 records it
(Azurite, Twilio mocked at the HTTP layer)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest
import responses

from api.edge.app_routes import send_sms
from api.edge.ops_routes import clear_opt_out, list_opt_outs
from api.edge.twilio_routes import incoming_sms
from api.services.retention import purge
from api.stores.storage import table
from tests.support.clock import moved
from tests.support.func_requests import problem, request, signed
from tests.support.settings import MESSAGES_URL, reset_caches
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_error, twilio_message

pytestmark = pytest.mark.usefixtures("storage")

RECIPIENT = "+14155550177"
SILENT = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def text_in(body: str, n: int = 1, sender: str = RECIPIENT) -> str:
    form = [("MessageSid", f"SM{n:032x}"), ("From", sender), ("To", "+14155550100"), ("Body", body)]
    answer = incoming_sms(signed("POST", "/api/incomingSms", form))
    assert answer.status_code == 200
    return answer.get_body().decode()


def send(to: str = RECIPIENT, key: str | None = None, caller: str = "user-1") -> func.HttpResponse:
    headers = {"Idempotency-Key": key} if key else {}
    body = {"to": to, "body": "your code is 1234"}
    return send_sms(request("POST", "/api/sendSms", json_body=body, headers=headers, caller=caller))


def counted() -> int:
    """Sends counted in every window row (minute, day, hour, the app's day)."""
    total = 0
    for entity in table("counters").list_entities():
        total += sum(v for k, v in entity.items() if isinstance(v, int) and k != "MinuteOf")
    return total


@pytest.mark.parametrize("word", ["STOP", "stop.", "Ｓｔｏｐ", " Unsubscribe ", "quit"])
def test_after_stop_a_send_is_422_with_nothing_sent_recorded_or_counted(
    twilio: responses.RequestsMock, word: str
) -> None:
    assert text_in(word) == SILENT  # Twilio confirms the opt-out itself
    answer = send()
    body = problem(answer)
    assert (answer.status_code, body["type"]) == (422, "urn:ahoy:problem:recipient-opted-out")
    assert [e["field"] for e in body["errors"]] == ["to"]
    assert RECIPIENT not in json.dumps(body)  # never who, nor when
    assert len(twilio.calls) == 0
    assert ledger_rows() == []
    assert counted() == 0


def test_start_clears_it_and_the_next_send_goes(twilio: responses.RequestsMock) -> None:
    text_in("STOP", 1)
    assert send().status_code == 422
    text_in("START", 2)
    twilio.post(MESSAGES_URL, json=twilio_message(to=RECIPIENT), status=201)
    assert send().status_code == 201
    assert len(twilio.calls) == 1


def test_twilios_21610_is_recorded_and_the_next_send_never_reaches_twilio(
    twilio: responses.RequestsMock,
) -> None:
    twilio.post(MESSAGES_URL, json=twilio_error(400, 21610, "unsubscribed"), status=400)
    first = problem(send())
    assert (first["status"], first["twilioCode"]) == (422, 21610)
    second = problem(send())
    assert second["type"].endswith("recipient-opted-out")
    assert len(twilio.calls) == 1


def test_a_retry_of_a_send_made_before_the_stop_still_gets_its_answer(
    twilio: responses.RequestsMock,
) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(to=RECIPIENT), status=201)
    first = send(key="order-7")
    text_in("STOP")
    again = send(key="order-7")
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
    assert again.get_body() == first.get_body()
    assert problem(send(key="order-8"))["type"].endswith("recipient-opted-out")


def test_help_gets_the_configured_answer_or_is_left_to_twilio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert text_in("HELP", 1) == SILENT
    monkeypatch.setenv("INCOMING_HELP_REPLY", "Ahoy: reply STOP to stop. help@example.com")
    reset_caches()
    assert "<Message>Ahoy: reply STOP to stop. help@example.com</Message>" in text_in("info", 2)
    assert text_in("info", 2) == SILENT  # a replay is not answered twice


def admin(handler: Any, path: str, number: str | None = None) -> func.HttpResponse:
    params = {"number": number} if number else {}
    response: func.HttpResponse = handler(
        request("GET" if number is None else "DELETE", path, caller=None, route_params=params)
    )
    return response


def test_admins_list_and_clear_opt_outs() -> None:
    text_in("STOP", 1, "+14155550171")
    text_in("END", 2, "+14155550172")
    listed = json.loads(admin(list_opt_outs, "/api/ops/opt-outs").get_body())
    assert [(i["number"], i["source"]) for i in listed["items"]] == [
        ("+14155550171", "STOP"),
        ("+14155550172", "END"),
    ]
    assert admin(clear_opt_out, "/api/ops/opt-outs/+14155550171", "+14155550171").status_code == (
        204
    )
    assert admin(clear_opt_out, "/api/ops/opt-outs/+14155550171", "+14155550171").status_code == (
        404
    )
    listed = json.loads(admin(list_opt_outs, "/api/ops/opt-outs").get_body())
    assert [i["number"] for i in listed["items"]] == ["+14155550172"]


def test_retention_keeps_opt_outs_unless_told_how_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_DAYS", "1")
    with moved(-timedelta(days=400)):
        text_in("STOP")
    assert purge().get("opt-outs", 0) == 0
    assert len(list(table("optouts").list_entities())) == 1
    monkeypatch.setenv("OPT_OUT_KEEP_DAYS", "365")
    reset_caches()
    assert purge()["opt-outs"] == 1
    assert list(table("optouts").list_entities()) == []
