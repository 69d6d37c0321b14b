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
    from api.signatures import verify_twilio_request

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
    from api.errors import InvalidSignature

    with pytest.raises(InvalidSignature):
        verify(form_request("http://x/myapp.php?foo=1&bar=2", params, VECTOR_SIGNATURE))


def test_an_altered_query_string_fails(vector_app: None) -> None:
    from api.errors import InvalidSignature

    with pytest.raises(InvalidSignature):
        verify(form_request("http://x/myapp.php?foo=2&bar=2", VECTOR_PARAMS, VECTOR_SIGNATURE))


def test_the_published_json_vector_validates_with_its_body_hash(vector_app: None) -> None:
    url = f"http://x/myapp.php?foo=1&bar=2&bodySHA256={VECTOR_JSON_HASH}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": VECTOR_JSON_SIGNATURE}
    verify(request("POST", url, body=VECTOR_JSON.encode(), headers=headers, caller=None))


def test_a_forged_json_body_fails_even_with_a_valid_url_signature(vector_app: None) -> None:
    from api.errors import InvalidSignature

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
