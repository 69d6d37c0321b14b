"""Scheduled messages: Twilio holds them until `sendAt`; the caller can cancel them before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
import responses

from api.core import clock
from api.edge.app_routes import cancel_message, send_sms
from tests.support.func_requests import problem, request, sent_form
from tests.support.settings import MESSAGES_URL, TWILIO_API, reset_caches
from tests.support.twilio_api import twilio_error, twilio_message

SERVICE = "MG" + "3" * 32
SID = "SM" + "a" * 32
TO = "+14155551234"


@pytest.fixture(autouse=True)
def messaging_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", SERVICE)
    reset_caches()


def schedule(send_at: Any, **extra: Any) -> func.HttpResponse:
    body = {"to": TO, "body": "your appointment is tomorrow", "sendAt": send_at, **extra}
    return send_sms(request("POST", "/api/sendSms", json_body=body))


def ahead(**delta: float) -> str:
    return (clock.now() + timedelta(**delta)).isoformat()


def test_a_scheduled_message_is_handed_to_the_messaging_service_with_its_time(
    twilio: responses.RequestsMock,
) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(status="scheduled", **{"from": None}), status=201)
    send_at = (clock.now() + timedelta(hours=2)).astimezone(UTC).replace(microsecond=0)
    answer = schedule(send_at.isoformat())
    assert answer.status_code == 201
    assert json.loads(answer.get_body())["status"] == "scheduled"
    form = sent_form(twilio.calls[0])
    assert form["ScheduleType"] == ["fixed"]
    assert datetime.fromisoformat(form["SendAt"][0].replace("Z", "+00:00")) == send_at
    assert form["MessagingServiceSid"] == [SERVICE]
    assert "From" not in form


@pytest.mark.parametrize(
    ("send_at", "field"),
    [
        ({"minutes": 14}, "sendAt"),
        ({"days": 35, "minutes": 1}, "sendAt"),
        ({"minutes": -5}, "sendAt"),
    ],
)
def test_a_time_outside_the_window_is_a_422_naming_it(
    storage: str, send_at: dict[str, float], field: str
) -> None:
    body = problem(schedule(ahead(**send_at)))
    assert body["status"] == 422
    assert body["errors"] == [
        {"field": "sendAt", "message": "must be 15 minutes to 35 days from now"}
    ]


def test_a_time_without_an_offset_is_a_422(storage: str) -> None:
    naive = (clock.now() + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert [e["field"] for e in problem(schedule(naive))["errors"]] == ["sendAt"]


def test_without_a_messaging_service_it_is_a_configuration_problem(
    storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_MESSAGING_SERVICE_SID")
    reset_caches()
    body = problem(schedule(ahead(hours=1)))
    assert (body["status"], body["settings"]) == (500, ["TWILIO_MESSAGING_SERVICE_SID"])


def test_from_is_the_services_to_choose(storage: str) -> None:
    from tests.support.settings import FROM_NUMBER

    body = problem(schedule(ahead(hours=1), **{"from": FROM_NUMBER}))
    assert [e["field"] for e in body["errors"]] == ["from"]


def cancel(sid: str = SID, caller: str = "user-1") -> func.HttpResponse:
    response: func.HttpResponse = cancel_message(
        request("DELETE", f"/api/messages/{sid}", caller=caller, route_params={"sid": sid})
    )
    return response


def test_the_caller_cancels_a_scheduled_message_and_only_that(
    twilio: responses.RequestsMock,
) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(status="scheduled"), status=201)
    assert schedule(ahead(hours=3)).status_code == 201
    assert cancel(caller="user-2").status_code == 404
    twilio.post(f"{TWILIO_API}/Messages/{SID}.json", json=twilio_message(status="canceled"))
    answer = cancel()
    assert answer.status_code == 200
    view = json.loads(answer.get_body())
    assert (view["status"], [h["status"] for h in view["history"]]) == (
        "canceled",
        ["scheduled", "canceled"],
    )
    assert str(twilio.calls[1].request.body) == "Status=canceled"
    assert problem(cancel())["status"] == 409  # canceled already: nothing asked of Twilio
    assert len(twilio.calls) == 2


def test_a_message_twilio_already_sent_is_a_409(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(status="scheduled"), status=201)
    schedule(ahead(hours=3))
    twilio.post(
        f"{TWILIO_API}/Messages/{SID}.json",
        json=twilio_error(400, 30409, "not scheduled"),
        status=400,
    )
    assert problem(cancel())["status"] == 409


def test_a_scheduled_send_counts_when_it_is_asked(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "1")
    reset_caches()
    twilio.post(MESSAGES_URL, json=twilio_message(status="scheduled"), status=201)
    assert schedule(ahead(hours=1)).status_code == 201
    assert schedule(ahead(hours=2)).status_code == 429
