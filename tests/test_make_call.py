"""POST /api/makeCall: the call Twilio is asked to place, and the sealed flow it will fetch."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
import pytest
import responses

from api.core.sealing import unseal
from api.core.settings import get_settings
from api.edge.app_routes import make_call
from tests.support.func_requests import problem, request, sent_form
from tests.support.settings import CALLS_URL, FROM_NUMBER, PUBLIC_BASE_URL
from tests.support.twilio_api import twilio_call, twilio_error

TO = "+14155551234"


def post(body: object) -> func.HttpResponse:
    return make_call(request("POST", "/api/makeCall", json_body=body))


def test_places_the_call_with_a_sealed_flow(twilio: responses.RequestsMock) -> None:
    twilio.post(CALLS_URL, json=twilio_call(), status=201)
    response = post({"to": TO, "message": "Hello from Ahoy", "voice": "woman", "loop": 2})
    assert response.status_code == 201
    assert json.loads(response.get_body()) == {
        "sid": "CA" + "b" * 32,
        "status": "queued",
        "to": TO,
        "from": FROM_NUMBER,
        "dateCreated": "2026-11-28T00:00:00Z",
    }
    form = sent_form(twilio.calls[0])
    assert form["To"] == [TO]
    assert form["From"] == [FROM_NUMBER]
    url = urlsplit(form["Url"][0])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{PUBLIC_BASE_URL}/api/twiml"
    assert set(parse_qs(url.query)) == {"flow"}
    flow = unseal(parse_qs(url.query)["flow"][0], key=get_settings().flow_key.get())
    assert flow.params == (("Message[0]", "Hello from Ahoy"), ("Voice", "woman"), ("Loop", "2"))


def test_the_url_twilio_gets_reveals_neither_text_nor_number(
    twilio: responses.RequestsMock,
) -> None:
    twilio.post(CALLS_URL, json=twilio_call(), status=201)
    post({"to": TO, "message": "secret meeting at noon"})
    url = sent_form(twilio.calls[0])["Url"][0]
    for leak in ("secret", "meeting", "noon", "14155551234", "Message"):
        assert leak not in url


def test_audio_url_is_played_after_the_message(twilio: responses.RequestsMock) -> None:
    twilio.post(CALLS_URL, json=twilio_call(), status=201)
    post({"to": TO, "message": "Listen", "audioUrl": "https://cdn.example.org/tune.mp3"})
    token = parse_qs(urlsplit(sent_form(twilio.calls[0])["Url"][0]).query)["flow"][0]
    assert unseal(token, key=get_settings().flow_key.get()).params == (
        ("Message[0]", "Listen"),
        ("Message[1]", "https://cdn.example.org/tune.mp3"),
    )


def test_an_allowed_twiml_host_is_passed_through(twilio: responses.RequestsMock) -> None:
    twiml_url = "https://twiml.example.org/hello.xml"
    twilio.post(CALLS_URL, json=twilio_call(), status=201)
    assert post({"to": TO, "url": twiml_url}).status_code == 201
    assert sent_form(twilio.calls[0]) == {
        "To": [TO],
        "From": [FROM_NUMBER],
        "Url": [twiml_url],  # the owner's own server: no overrides of Ahoy's
        "FallbackUrl": [f"{PUBLIC_BASE_URL}/api/voiceFallback"],
        "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
        "StatusCallbackMethod": ["POST"],
        "TimeLimit": ["600"],
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://elsewhere.example.com/hello.xml",  # not listed
        f"{PUBLIC_BASE_URL}/api/twiml?Message[0]=hi",  # this app: Twilio would sign the fetch
        "http://twiml.example.org/hello.xml",  # not https
    ],
)
def test_other_twiml_urls_are_refused(
    twilio: responses.RequestsMock, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_TWIML_HOSTS", "twiml.example.org,ahoy.example.net")
    response = post({"to": TO, "url": url})
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["url"]
    assert len(twilio.calls) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"to": TO},
        {"to": TO, "message": "hi", "url": "https://twiml.example.org/a.xml"},
        {
            "to": TO,
            "audioUrl": "https://cdn.example.org/a.mp3",
            "url": "https://twiml.example.org/a",
        },
        {"to": TO, "url": "https://twiml.example.org/a.xml", "voice": "woman"},
        {"to": TO, "message": ""},
        {"to": TO, "message": "x" * 1001},
        {"to": TO, "message": "hi", "loop": 0},
        {"to": TO, "message": "hi", "loop": 11},
        {"to": TO, "message": "hi", "voice": "<woman>"},
        {"to": TO, "message": "hi", "language": "english please"},
        {"to": TO, "message": "hi", "audioUrl": "ftp://cdn.example.org/a.mp3"},
        {"to": "sip:alice@example.org", "message": "hi"},
        {"to": TO, "message": "hi", "from": FROM_NUMBER},
        {"to": TO, "message": "hi", "statusCallback": "https://evil.example/cb"},
        {"to": TO, "message": "hi", "timeLimit": 99999},
    ],
)
def test_invalid_calls_are_422_and_nothing_is_sent(
    twilio: responses.RequestsMock, body: dict[str, object]
) -> None:
    response = post(body)
    assert response.status_code == 422
    assert problem(response)["errors"]
    assert len(twilio.calls) == 0


def test_twilio_refusal_of_the_destination_is_422(twilio: responses.RequestsMock) -> None:
    twilio.post(CALLS_URL, json={"code": 21612, "message": "x", "status": 400}, status=400)
    response = post({"to": TO, "message": "hi"})
    assert response.status_code == 422
    assert problem(response)["twilioCode"] == 21612


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (21217, "not a valid phone number"),
        (21214, "cannot be reached"),
        (21215, "not allowed to call"),
        (21216, "blocked"),
        (21219, "verify"),
    ],
)
def test_twilios_voice_codes_for_the_destination_are_422_on_to(
    twilio: responses.RequestsMock, code: int, says: str
) -> None:
    twilio.post(CALLS_URL, json=twilio_error(400, code), status=400)
    response = post({"to": TO, "message": "hi"})
    assert response.status_code == 422
    body = problem(response)
    assert body["twilioCode"] == code
    assert [e["field"] for e in body["errors"]] == ["to"]
    assert says in body["detail"].lower()


@pytest.mark.parametrize("code", [21210, 21212])
def test_a_caller_id_twilio_refuses_is_a_configuration_problem(
    twilio: responses.RequestsMock, code: int
) -> None:
    twilio.post(CALLS_URL, json=twilio_error(400, code), status=400)
    response = post({"to": TO, "message": "hi"})
    assert response.status_code == 500
    assert problem(response)["settings"] == ["TWILIO_FROM_NUMBER"]
