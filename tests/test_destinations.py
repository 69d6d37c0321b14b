"""Where calls and messages may go: the policy refuses with 403 and nothing reaches Twilio."""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func
import pytest
import responses

from api.edge.app_routes import make_call, send_sms
from tests.support.func_requests import problem, request
from tests.support.settings import CALLS_URL, MESSAGES_URL
from tests.support.twilio_api import twilio_call, twilio_message

UK_MOBILE = "+447400123456"


def sms(to: str, **extra: object) -> func.HttpResponse:
    return send_sms(request("POST", "/api/sendSms", json_body={"to": to, "body": "hi", **extra}))


def call(to: str) -> func.HttpResponse:
    return make_call(request("POST", "/api/makeCall", json_body={"to": to, "message": "hi"}))


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+19005550100", "PREMIUM_RATE"),  # US premium rate
        ("+18005550100", "TOLL_FREE"),  # not in the default allowlist
        (UK_MOBILE, "region GB"),  # country not allowed by default
        ("+33612345678", "region FR"),
        ("+881612345678", "region 001"),  # satellite, non-geographic
        ("+15005550006", "sandbox"),  # Twilio test number outside sandbox mode
        ("+19765550100", "region unknown"),  # well-formed but unassigned
    ],
)
@pytest.mark.parametrize("send", [sms, call])
def test_refused_destinations_are_403_and_nothing_is_sent(
    twilio: responses.RequestsMock, number: str, why: str, send: Callable[[str], func.HttpResponse]
) -> None:
    response = send(number)
    assert response.status_code == 403
    body = problem(response)
    assert body["type"].endswith("destination-not-permitted")
    assert why in body["detail"]
    assert number not in body["detail"]
    assert len(twilio.calls) == 0


def test_allowed_countries_and_types_are_settings(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_COUNTRIES", "GB")
    monkeypatch.setenv("ALLOWED_NUMBER_TYPES", "MOBILE")
    twilio.post(MESSAGES_URL, json=twilio_message(to=UK_MOBILE), status=201)
    assert sms(UK_MOBILE).status_code == 201
    assert sms("+442071838750").status_code == 403  # a GB fixed line
    assert sms("+14155551234").status_code == 403  # US no longer allowed


def test_test_numbers_pass_in_sandbox_mode(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_SANDBOX", "1")
    twilio.post(CALLS_URL, json=twilio_call(to="+15005550006"), status=201)
    assert call("+15005550006").status_code == 201


def test_format_errors_stay_422_before_the_policy(twilio: responses.RequestsMock) -> None:
    assert sms("whatsapp:+447400123456").status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example.org/a.png",
        "https://user:pass@cdn.example.org/a.png",
        "https://user@cdn.example.org/a.png",
        "https://127.0.0.1/a.png",
        "https://10.0.0.5/a.png",
        "https://[::1]/a.png",
        "https://localhost/a.png",
        "https://printer.local/a.png",
        "https://db.internal/a.png",
        "https://intranet/a.png",
    ],
)
def test_media_urls_must_be_public_https(twilio: responses.RequestsMock, url: str) -> None:
    response = sms("+14155551234", mediaUrl=[url])
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["mediaUrl.0"]
    assert len(twilio.calls) == 0


def test_number_type_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_NUMBER_TYPES", "MOBILE,SATELLITE")
    response = sms("+14155551234")
    assert response.status_code == 500
    assert problem(response)["settings"] == ["ALLOWED_NUMBER_TYPES"]
