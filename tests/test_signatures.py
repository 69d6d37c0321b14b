"""X-Twilio-Signature on the Twilio-facing routes: fail closed, as Twilio computes it."""

from __future__ import annotations

import json

import pytest
from twilio.request_validator import RequestValidator

from tests.support.func_requests import problem, request, run_twiml, signed
from tests.support.settings import AUTH_TOKEN, PUBLIC_BASE_URL

# twilio-python's published test vector.
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
VECTOR_JSON = '{"property": "value", "boolean": true}'
VECTOR_JSON_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
VECTOR_JSON_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="


@pytest.fixture
def vector_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.settings import reset_caches

    monkeypatch.setenv("TWILIO_AUTH_TOKEN", VECTOR_TOKEN)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://mycompany.com")
    reset_caches()


def form_request(url: str, params: list[tuple[str, str]], signature: str | None) -> object:
    from urllib.parse import urlencode

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return request("POST", url, body=urlencode(params).encode(), headers=headers, caller=None)


def verify(req: object) -> None:
    from api.edge.signatures import verify_twilio_request

    verify_twilio_request(req)  # type: ignore[arg-type]


def test_the_published_vector_validates_against_the_public_url(vector_app: None) -> None:
    # Azure hands the function an internal URL; the check uses PUBLIC_BASE_URL instead.
    internal = "http://10.0.0.7:8080/myapp.php?foo=1&bar=2"
    verify(form_request(internal, VECTOR_PARAMS, VECTOR_SIGNATURE))


@pytest.mark.parametrize(
    "params",
    [
        [*VECTOR_PARAMS[:-1], ("To", "+18005551213")],  # a field altered
        [*VECTOR_PARAMS, ("Digits", "9")],  # a field added
        VECTOR_PARAMS[1:],  # a field dropped
    ],
)
def test_altered_params_fail(vector_app: None, params: list[tuple[str, str]]) -> None:
    from api.core.errors import InvalidSignature

    with pytest.raises(InvalidSignature):
        verify(form_request("http://x/myapp.php?foo=1&bar=2", params, VECTOR_SIGNATURE))


def test_an_altered_query_string_fails(vector_app: None) -> None:
    from api.core.errors import InvalidSignature

    with pytest.raises(InvalidSignature):
        verify(form_request("http://x/myapp.php?foo=2&bar=2", VECTOR_PARAMS, VECTOR_SIGNATURE))


def test_the_published_json_vector_validates_with_its_body_hash(vector_app: None) -> None:
    url = f"http://x/myapp.php?foo=1&bar=2&bodySHA256={VECTOR_JSON_HASH}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": VECTOR_JSON_SIGNATURE}
    verify(request("POST", url, body=VECTOR_JSON.encode(), headers=headers, caller=None))


def test_a_forged_json_body_fails_even_with_a_valid_url_signature(vector_app: None) -> None:
    from api.core.errors import InvalidSignature

    url = f"http://x/myapp.php?foo=1&bar=2&bodySHA256={VECTOR_JSON_HASH}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": VECTOR_JSON_SIGNATURE}
    forged = json.dumps({"property": "forged", "boolean": True}).encode()
    with pytest.raises(InvalidSignature):
        verify(request("POST", url, body=forged, headers=headers, caller=None))


def test_an_explicit_default_port_still_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.settings import reset_caches

    monkeypatch.setenv("PUBLIC_BASE_URL", "https://ahoy.example.net:443")
    reset_caches()
    assert run_twiml(signed("GET", "/api/twiml?Message[0]=hi")).status_code == 200


def test_repeated_form_keys_are_all_part_of_the_signature() -> None:
    form = [("Message[0]", "ignored"), ("Digits", "1"), ("Digits", "2")]
    assert run_twiml(signed("POST", "/api/twiml", form)).status_code == 200


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl", "%%%"])
def test_missing_or_wrong_signatures_are_403_problems(signature: str | None) -> None:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = run_twiml(request("GET", "/api/twiml?Message[0]=hi", headers=headers, caller=None))
    assert response.status_code == 403
    assert problem(response)["type"].endswith("invalid-signature")


def test_a_signature_made_with_another_token_is_403() -> None:
    assert run_twiml(signed("GET", "/api/twiml", token="another-token")).status_code == 403


def test_the_secondary_token_is_accepted_during_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_SECONDARY", "next-token")
    assert run_twiml(signed("GET", "/api/twiml", token="next-token")).status_code == 200
    assert run_twiml(signed("GET", "/api/twiml", token=AUTH_TOKEN)).status_code == 200


def test_forwarded_headers_are_not_trusted() -> None:
    path = "/api/twiml?Message[0]=hi"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"https://evil.example{path}", {})
    req = request(
        "GET",
        path,
        headers={
            "X-Twilio-Signature": signature,
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
        },
        caller=None,
    )
    assert run_twiml(req).status_code == 403


def test_an_unsigned_body_of_another_type_is_refused() -> None:
    path = "/api/twiml"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE_URL + path, {})
    req = request(
        "POST",
        path,
        body=b"<Response/>",
        headers={"X-Twilio-Signature": signature, "Content-Type": "text/xml"},
        caller=None,
    )
    assert run_twiml(req).status_code == 403


def test_the_check_can_be_switched_off_only_under_the_local_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_VALIDATE_SIGNATURES", "false")
    unsigned = request("GET", "/api/twiml?Message[0]=hi", caller=None)
    refused = run_twiml(unsigned)
    assert refused.status_code == 500
    assert problem(refused)["settings"] == ["TWILIO_VALIDATE_SIGNATURES"]

    from tests.support.settings import reset_caches

    monkeypatch.setenv("DEVHOST_BIND", "127.0.0.1:7071")
    reset_caches()
    assert run_twiml(unsigned).status_code == 200


# --- Webhook Rules: a shared key and HMAC-SHA256 ---------------------------------------------

SHARED_KEY = "shared-key-secret-0123456789abcdef"
NEXT_SHARED_KEY = "shared-key-secret-fedcba9876543210"
CALL_FORM = [("CallSid", "CA" + "1" * 32), ("From", "+14155550177"), ("To", "+14155550100")]
# Every Twilio-facing route, with a request that passes its signature check.
TWILIO_ROUTES = [
    ("twiml", "GET", "/api/twiml?Message[0]=hi", None),
    ("flow_step", "POST", "/api/flowStep?Message[0]=hi", CALL_FORM),
    ("status", "POST", "/api/status?ref=" + "0" * 32, [("MessageSid", "SM" + "1" * 32)]),
    ("voice", "POST", "/api/voice", CALL_FORM),
    ("incoming_call", "POST", "/api/incomingCall", CALL_FORM),
    ("incoming_sms", "POST", "/api/incomingSms", [*CALL_FORM[1:], ("Body", "hi")]),
]


def call_route(name: str, req: object) -> int:
    import asyncio
    import inspect

    from api.edge import twilio_routes

    handler = getattr(twilio_routes, name)
    answer = handler(req)
    if inspect.iscoroutine(answer):
        answer = asyncio.run(answer)
    return int(answer.status_code)


@pytest.fixture
def shared_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_WEBHOOK_SHARED_KEY", SHARED_KEY)


@pytest.mark.usefixtures("shared_key")
@pytest.mark.parametrize(("name", "method", "path", "form"), TWILIO_ROUTES)
def test_a_shared_key_signature_is_accepted_on_every_twilio_facing_route(
    name: str, method: str, path: str, form: list[tuple[str, str]] | None
) -> None:
    accepted = signed(method, path, form, token=SHARED_KEY, algorithm="HMAC_SHA256")
    assert call_route(name, accepted) != 403
    # ... and refused with another key, or with the header stripped (then it reads as an
    # auth token signature, which it is not)
    wrong = signed(method, path, form, token="not-the-key", algorithm="HMAC_SHA256")
    assert call_route(name, wrong) == 403
    stripped = signed(method, path, form, token=SHARED_KEY, algorithm="HMAC_SHA256", announce=False)
    assert call_route(name, stripped) == 403
    # the auth token's signature still works beside it
    assert call_route(name, signed(method, path, form)) != 403


@pytest.mark.usefixtures("shared_key")
@pytest.mark.parametrize(
    "header", ["key=k,algorithm=HMAC_SHA1", "key=k,algorithm=MD5", "key=k", "algorithm="]
)
def test_a_shared_key_header_may_not_ask_for_a_weaker_check(header: str) -> None:
    # HMAC-SHA1 over the shared key, announced as such: a downgrade, refused
    weak = signed(
        "GET",
        "/api/twiml?Message[0]=hi",
        token=SHARED_KEY,
        algorithm="HMAC_SHA1",
        settings_header=header,
    )
    response = run_twiml(weak)
    assert response.status_code == 403
    assert "HMAC_SHA256" in problem(response)["detail"]


def test_a_shared_key_signature_with_no_key_configured_names_the_setting() -> None:
    response = run_twiml(
        signed("GET", "/api/twiml?Message[0]=hi", token=SHARED_KEY, algorithm="HMAC_SHA256")
    )
    assert response.status_code == 403
    detail = problem(response)["detail"]
    assert "TWILIO_WEBHOOK_SHARED_KEY" in detail
    assert SHARED_KEY not in json.dumps(problem(response))


def test_both_shared_keys_are_accepted_while_one_is_rotated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_WEBHOOK_SHARED_KEY", SHARED_KEY)
    monkeypatch.setenv("TWILIO_WEBHOOK_SHARED_KEY_SECONDARY", NEXT_SHARED_KEY)
    for key in (SHARED_KEY, NEXT_SHARED_KEY):
        req = signed("GET", "/api/twiml?Message[0]=hi", token=key, algorithm="HMAC_SHA256")
        assert run_twiml(req).status_code == 200


@pytest.mark.usefixtures("shared_key")
def test_a_json_webhook_signed_with_a_shared_key_checks_its_body_hash() -> None:
    import hashlib

    from twilio.request_validator import SIGNATURE_SETTINGS_HEADER

    body = VECTOR_JSON
    path = f"/api/twiml?Message[0]=hi&bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = RequestValidator(SHARED_KEY).compute_signature(
        PUBLIC_BASE_URL + path, {}, "HMAC_SHA256"
    )
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Signature": signature,
        SIGNATURE_SETTINGS_HEADER: "key=k,algorithm=HMAC_SHA256",
    }
    good = request("POST", path, body=body.encode(), headers=headers, caller=None)
    assert run_twiml(good).status_code == 200
    forged = request("POST", path, body=b'{"property": "forged"}', headers=headers, caller=None)
    assert run_twiml(forged).status_code == 403


# --- URLs with Twilio's connection overrides ------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "HMAC_SHA256"])
@pytest.mark.parametrize(
    ("signed_over", "valid"),
    [
        ("", True),  # the URL as requested (HTTP never sends a fragment)
        ("#ct=3000&rt=6000&tt=14000&rc=2&rp=ct,rt,5xx", True),  # as Ahoy handed it out
        ("#ct=1000", False),  # a fragment Ahoy never hands out
    ],
)
def test_a_webhook_to_a_url_with_overrides_validates_either_way_twilio_signs_it(
    monkeypatch: pytest.MonkeyPatch, algorithm: str | None, signed_over: str, valid: bool
) -> None:
    from urllib.parse import urlencode

    from twilio.request_validator import SIGNATURE_SETTINGS_HEADER
    from werkzeug.datastructures import MultiDict

    from api.core.errors import InvalidSignature
    from api.core.settings import get_settings
    from api.core.urls import CONNECTION_OVERRIDES, webhook_url
    from tests.support.settings import reset_caches

    secret = AUTH_TOKEN
    if algorithm:
        secret = "shared-key-secret-0123456789abcdef"
        monkeypatch.setenv("TWILIO_WEBHOOK_SHARED_KEY", secret)
        reset_caches()
    handed_out = webhook_url(get_settings(), "/api/status?ref=" + "0" * 32)
    assert handed_out.endswith(f"#{CONNECTION_OVERRIDES}")
    requested = handed_out.split("#")[0]
    form = [("MessageSid", "SM" + "1" * 32), ("MessageStatus", "sent")]
    signature = RequestValidator(secret).compute_signature(
        requested + signed_over, MultiDict(form), algorithm
    )
    headers = {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if algorithm:
        headers[SIGNATURE_SETTINGS_HEADER] = f"key=webhooks_sharedkey_0123,algorithm={algorithm}"
    path = requested.removeprefix(PUBLIC_BASE_URL)
    req = request("POST", path, body=urlencode(form).encode(), headers=headers, caller=None)
    if valid:
        verify(req)
    else:
        with pytest.raises(InvalidSignature):
            verify(req)


def test_the_voice_fallback_apologises_whoever_asks() -> None:
    import asyncio

    from api.edge.twilio_routes import voice_fallback

    answer = asyncio.run(voice_fallback(request("POST", "/api/voiceFallback", caller=None)))
    assert (answer.status_code, answer.mimetype) == (200, "text/xml")
    assert b"<Say>Sorry, this call cannot be completed. Goodbye.</Say><Hangup />" in (
        answer.get_body()
    )
