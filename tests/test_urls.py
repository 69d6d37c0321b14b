"""One URL rule for everything Ahoy hands to Twilio or lets Twilio fetch: read as a WHATWG
fetcher reads it, refused where readings could differ, hosts canonical before any check."""

from __future__ import annotations

import pytest
import responses

from api.core.settings import get_settings
from api.core.urls import is_allowed_twiml_url, is_public_https_url
from api.edge.app_routes import make_call, send_sms
from api.edge.twilio_routes import flow_step
from tests.support.func_requests import problem, request, run_twiml, signed

APOLOGY = "Sorry, this call cannot be completed."

# ALLOWED_TWIML_HOSTS is twiml.example.org in the test settings.
AMBIGUOUS_TWIML = [
    "https://evil.example\\@twiml.example.org/x",  # Python reads twiml.example.org, WHATWG evil
    "https://user@twiml.example.org/x",
    "https://twiml.example.org\t/x",
    "https://twiml.example.org /x",
    "https://twiml.example.org%00/x",
    "http://twiml.example.org/x",
    "https://ahoy.example.net/api/flowStep",  # this app: Twilio would sign the fetch
]
PRIVATE_MEDIA = [
    "https://127.1/a.mp3",
    "https://0x7f.0.0.1/a.mp3",
    "https://0177.0.0.1/a.mp3",
    "https://2130706433./a.mp3",
    "https://[::1]/a.mp3",
    "https://10.0.0.5/a.mp3",
    "https://localhost./a.mp3",
    "https://LOCALHOST/a.mp3",
    "https://files.internal./a.mp3",
    "https://printer.local./a.mp3",
    "https://intranet/a.mp3",
    "https://evil.example\\@cdn.example.org/a.mp3",
    "https://user:pw@cdn.example.org/a.mp3",
]


@pytest.mark.parametrize("url", AMBIGUOUS_TWIML)
def test_twiml_urls_that_could_be_read_two_ways_or_point_here_are_refused(url: str) -> None:
    assert not is_allowed_twiml_url(url, get_settings())
    assert not is_allowed_twiml_url(url, get_settings(), own_twiml=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://twiml.example.org/x",
        "https://TWIML.example.org./x?a=1",
        "https://twiml.example.org:443/x",
    ],
)
def test_allowed_twiml_hosts_match_canonically(url: str) -> None:
    assert is_allowed_twiml_url(url, get_settings())


def test_flows_may_point_at_this_apps_own_twiml_only() -> None:
    settings = get_settings()
    assert is_allowed_twiml_url(
        "https://ahoy.example.net/api/twiml?Message=hi", settings, own_twiml=True
    )
    assert not is_allowed_twiml_url("https://ahoy.example.net/api/twiml", settings)
    assert not is_allowed_twiml_url("https://ahoy.example.net/api/twimlx", settings, own_twiml=True)


@pytest.mark.parametrize("url", PRIVATE_MEDIA)
def test_media_must_be_on_a_public_name_in_any_spelling(url: str) -> None:
    assert not is_public_https_url(url)


@pytest.mark.parametrize("url", ["https://cdn.example.org/a.png", "https://Bücher.example/a.mp3"])
def test_public_media_passes(url: str) -> None:
    assert is_public_https_url(url)


@pytest.mark.parametrize("url", AMBIGUOUS_TWIML[:3])
def test_make_call_refuses_an_ambiguous_url_and_sends_nothing(url: str) -> None:
    response = make_call(
        request("POST", "/api/makeCall", json_body={"to": "+14155551234", "url": url})
    )
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["url"]


@pytest.mark.parametrize("url", PRIVATE_MEDIA[:6])
def test_a_message_that_is_a_url_passes_the_media_rule(url: str) -> None:
    body = {"to": "+14155551234", "message": url}
    response = make_call(request("POST", "/api/makeCall", json_body=body))
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["message"]


@pytest.mark.parametrize("field", ["mediaUrl", "audioUrl"])
def test_media_and_audio_urls_in_other_spellings_are_422(field: str) -> None:
    if field == "mediaUrl":
        body: dict[str, object] = {
            "to": "+14155551234",
            "body": "x",
            "mediaUrl": ["https://127.1/a"],
        }
        response = send_sms(request("POST", "/api/sendSms", json_body=body))
    else:
        body = {"to": "+14155551234", "audioUrl": "https://0x7f.0.0.1/a.mp3"}
        response = make_call(request("POST", "/api/makeCall", json_body=body))
    assert response.status_code == 422
    assert problem(response)["errors"][0]["field"].startswith(field)


@pytest.mark.parametrize(
    "query",
    [
        "mode=menu&Options%5B1%5D=https%3A%2F%2Fevil.example%5C%40twiml.example.org%2Fx",
        "Message%5B0%5D=https%3A%2F%2F127.1%2Fa.mp3",
    ],
)
def test_flows_apologise_instead_of_fetching_an_ambiguous_or_private_url(query: str) -> None:
    response = run_twiml(signed("POST", "/api/twiml?" + query, []))
    body = response.get_body().decode()
    assert APOLOGY in body
    assert "127.0.0.1" not in body
    assert "evil.example" not in body


def test_a_fail_url_read_two_ways_is_not_followed() -> None:
    fail_url = "https%3A%2F%2Fevil.example%5C%40twiml.example.org%2Fx"
    path = (
        f"/api/flowStep?step=dial-done&mode=forward&PhoneNumber=%2B14155550100&FailUrl={fail_url}"
    )
    response = flow_step(signed("POST", path, [("DialCallStatus", "busy")]))
    body = response.get_body().decode()
    assert APOLOGY in body
    assert "<Redirect" not in body


def test_nothing_reaches_twilio_for_any_of_them(twilio: responses.RequestsMock) -> None:
    for url in AMBIGUOUS_TWIML:
        make_call(request("POST", "/api/makeCall", json_body={"to": "+14155551234", "url": url}))
    assert len(twilio.calls) == 0
