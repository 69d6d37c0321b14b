"""POST /api/sendSms: what Twilio receives, what the app gets back, what never reaches it."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
import requests
import responses

from api.edge.app_routes import send_sms
from tests.support.func_requests import problem, request, sent_form
from tests.support.settings import FROM_NUMBER, MESSAGES_URL
from tests.support.twilio_api import twilio_error, twilio_message

TO = "+14155551234"


def post(body: object) -> func.HttpResponse:
    return send_sms(request("POST", "/api/sendSms", json_body=body))


def test_sends_the_message_and_answers_201(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    response = post({"to": TO, "body": "ahoy hoy"})
    assert response.status_code == 201
    assert sent_form(twilio.calls[0]) == {"To": [TO], "From": [FROM_NUMBER], "Body": ["ahoy hoy"]}
    assert response.mimetype == "application/json"
    assert json.loads(response.get_body()) == {
        "sid": "SM" + "a" * 32,
        "status": "queued",
        "to": TO,
        "from": FROM_NUMBER,
        "dateCreated": "2026-11-28T00:00:00Z",
    }
    assert str(twilio.calls[0].request.headers["Authorization"]).startswith("Basic ")


def test_media_urls_are_all_sent(twilio: responses.RequestsMock) -> None:
    media = ["https://cdn.example.org/a.png", "https://cdn.example.org/b.png"]
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    response = post({"to": TO, "body": "look", "mediaUrl": media})
    assert response.status_code == 201
    sent = str(twilio.calls[0].request.body)
    assert "MediaUrl=https%3A%2F%2Fcdn.example.org%2Fa.png" in sent
    assert "MediaUrl=https%3A%2F%2Fcdn.example.org%2Fb.png" in sent


def test_messaging_service_replaces_from_when_configured(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = "MG" + "c" * 32
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", service)
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    assert post({"to": TO, "body": "hi"}).status_code == 201
    assert sent_form(twilio.calls[0]) == {
        "To": [TO],
        "MessagingServiceSid": [service],
        "Body": ["hi"],
    }


def test_explicit_from_must_be_the_apps_number(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    assert post({"to": TO, "body": "hi", "from": FROM_NUMBER}).status_code == 201
    assert sent_form(twilio.calls[0]) == {"To": [TO], "From": [FROM_NUMBER], "Body": ["hi"]}
    refused = post({"to": TO, "body": "hi", "from": "+14155559999"})
    assert refused.status_code == 422
    assert [e["field"] for e in problem(refused)["errors"]] == ["from"]
    assert len(twilio.calls) == 1


def test_api_key_is_preferred_for_rest_calls(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    monkeypatch.setenv("TWILIO_API_KEY_SID", "SK" + "d" * 32)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", "key-secret")
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    assert post({"to": TO, "body": "hi"}).status_code == 201
    credentials = base64.b64encode(f"SK{'d' * 32}:key-secret".encode()).decode()
    assert twilio.calls[0].request.headers["Authorization"] == f"Basic {credentials}"


def test_region_and_edge_in_the_environment_are_ignored(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_REGION", "au1")
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)  # api.twilio.com, not .au1
    assert post({"to": TO, "body": "hi"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "14155551234", "body": "hi"}, "to"),
        ({"to": "+1 415 555 1234", "body": "hi"}, "to"),
        ({"to": "sip:+14155551234", "body": "hi"}, "to"),
        ({"to": "client:alice", "body": "hi"}, "to"),
        ({"to": "whatsapp:+14155551234", "body": "hi"}, "to"),
        ({"to": "tel:+14155551234", "body": "hi"}, "to"),
        ({"to": "+14155551234\n", "body": "hi"}, "to"),
        ({"to": "+0123456789", "body": "hi"}, "to"),
        ({"to": 14155551234, "body": "hi"}, "to"),
        ({"to": TO, "body": ""}, "body"),
        ({"to": TO, "body": "x" * 1601}, "body"),
        ({"to": TO, "body": "€" * 801}, "body"),  # 1,602 GSM-7 units: each an escape and €
        ({"to": TO, "body": "😀" * 801}, "body"),  # 1,602 UTF-16 units
        ({"to": TO, "body": "é" * 1599 + "😀"}, "body"),  # 1,601: the emoji makes it UCS-2
        ({"to": TO}, "body"),
        ({"body": "hi"}, "to"),
        ({"to": TO, "body": "hi", "mediaUrl": ["http://cdn.example.org/a.png"]}, "mediaUrl.0"),
        ({"to": TO, "body": "hi", "mediaUrl": ["https://cdn.example.org/a.png"] * 11}, "mediaUrl"),
        ({"to": TO, "body": "hi", "statusCallback": "https://evil.example"}, "statusCallback"),
    ],
)
def test_invalid_fields_are_422_and_nothing_is_sent(
    twilio: responses.RequestsMock, body: dict[str, object], field: str
) -> None:
    response = post(body)
    assert response.status_code == 422
    assert field in [e["field"] for e in problem(response)["errors"]]
    assert len(twilio.calls) == 0


def test_malformed_json_is_400() -> None:
    req = request(
        "POST", "/api/sendSms", body=b'{"to": ', headers={"Content-Type": "application/json"}
    )
    response = send_sms(req)
    assert response.status_code == 400
    assert problem(response)["title"] == "Malformed JSON"


def test_non_json_body_is_415() -> None:
    req = request(
        "POST",
        "/api/sendSms",
        body=b"to=%2B14155551234&body=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert send_sms(req).status_code == 415


def test_body_over_64_kib_is_413() -> None:
    huge = json.dumps({"to": TO, "body": "x" * 70_000}).encode()
    req = request("POST", "/api/sendSms", body=huge, headers={"Content-Type": "application/json"})
    assert send_sms(req).status_code == 413


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, 21211, 422),
        (400, 21612, 422),
        (400, 21614, 422),
        (400, 21610, 422),
        (400, 21408, 422),
        (400, 21608, 422),
        (400, 21212, 500),
        (400, 21606, 500),
        (400, 21611, 503),
        (401, 20003, 500),
        (429, 20429, 503),
        (500, 20500, 502),
        (503, 20503, 502),
        (400, 30001, 502),
    ],
)
def test_twilio_errors_are_mapped(
    twilio: responses.RequestsMock, status: int, code: int, expected: int
) -> None:
    twilio.post(MESSAGES_URL, json=twilio_error(status, code), status=status)
    response = post({"to": TO, "body": "hi"})
    assert response.status_code == expected
    body = problem(response)
    assert body["twilioCode"] == code
    if expected == 422:
        assert [e["field"] for e in body["errors"]] == ["to"]
    if expected == 503:
        assert response.headers.get("Retry-After")
    if code in (21212, 21606):
        assert body["settings"] == ["TWILIO_FROM_NUMBER"]


def test_trial_account_refusal_says_what_to_do(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_error(400, 21608), status=400)
    detail = problem(post({"to": TO, "body": "hi"}))["detail"]
    assert "verify" in detail.lower()
    assert "upgrade" in detail.lower()


def test_rejected_credentials_name_the_misconfiguration(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_error(401, 20003, "Authenticate"), status=401)
    body = problem(post({"to": TO, "body": "hi"}))
    assert body["detail"] == "Twilio rejected this app's credentials."
    assert "test-auth-token" not in json.dumps(body)


def test_rfc9457_errors_from_twilio_are_mapped_too(twilio: responses.RequestsMock) -> None:
    twilio.post(
        MESSAGES_URL,
        json={
            "type": "https://www.twilio.com/docs/errors/21211",
            "title": "Invalid 'To' Phone Number",
            "status": 400,
            "code": 21211,
        },
        status=400,
        content_type="application/problem+json",
    )
    assert post({"to": TO, "body": "hi"}).status_code == 422


def test_read_timeout_is_504(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, body=requests.ReadTimeout("read timed out"))
    response = post({"to": TO, "body": "hi"})
    assert response.status_code == 504
    assert "unknown" in problem(response)["detail"]


def test_connection_failure_is_502(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, body=requests.ConnectionError("connection reset"))
    assert post({"to": TO, "body": "hi"}).status_code == 502


def test_client_uses_explicit_timeouts() -> None:
    from api.stores.twilio_service import CONNECT_TIMEOUT_SECONDS, get_twilio_service

    http_client = get_twilio_service()._client.http_client
    assert http_client.timeout == (CONNECT_TIMEOUT_SECONDS, pytest.approx(10.0))


def test_one_client_serves_every_invocation(twilio: responses.RequestsMock) -> None:
    from api.stores.twilio_service import get_twilio_service

    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    first = get_twilio_service()
    post({"to": TO, "body": "one"})
    post({"to": TO, "body": "two"})
    assert get_twilio_service() is first


@pytest.mark.parametrize(
    "text", ["x" * 1600, "€" * 800, "😀" * 800, "é" * 1600, "ж" * 1600, "é" * 1598 + "😀"]
)
def test_a_body_of_1600_units_as_twilio_counts_them_is_sent(
    twilio: responses.RequestsMock, text: str
) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    assert post({"to": TO, "body": text}).status_code == 201
    assert len(twilio.calls) == 1
