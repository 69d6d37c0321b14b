"""Hostile input never gets a bare 500: Unicode digits, deep nesting, forged page tokens,
loose types; and the edges of trust: WEBSITE_AUTH_ENABLED, empty subjects, the loopback guard,
and what urllib3 would log while Twilio is unreachable."""

from __future__ import annotations

import base64
import logging
import threading
import time
from datetime import UTC, datetime

import azure.functions as func
import pytest
import responses

from api.core.errors import (
    ConfigurationError,
    NotAuthenticated,
    ServiceUnavailable,
    UpstreamUnreachable,
)
from api.core.settings import Settings, get_settings
from api.edge import auth
from api.edge.app_routes import admin_inbox, make_call, send_sms
from api.edge.auth import authenticate
from api.edge.twilio_routes import flow_step, status
from api.stores.twilio_service import get_twilio_service
from tests.support.func_requests import problem, request, run_twiml, signed
from tests.support.jwks_server import Issuer
from tests.support.settings import ACCOUNT_SID, BASE_SETTINGS

APOLOGY = "Sorry, this call cannot be completed."
UNICODE_DIGITS = ["²", "٣", "３", "1²"]


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
@pytest.mark.parametrize(
    "query",
    [
        "Message[0]=hi&Loop={d}",
        "Message[0]=hi&Pause[0]={d}",
        "Message[{d}]=hi",
        "mode=pause&Length={d}",
    ],
)
def test_twiml_integers_are_ascii_digits_only(query: str, digits: str) -> None:
    response = run_twiml(signed("POST", "/api/twiml?" + query.format(d=digits), []))
    assert response.status_code == 200
    body = response.get_body().decode()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response')
    # A bad number apologises; `Message[²]` is no Message item: ignored, as Twimlets does.
    assert APOLOGY in body or "<Say>" not in body
    assert "<Pause" not in body


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_flow_step_integers_are_ascii_digits_only(digits: str) -> None:
    path = f"/api/flowStep?step=menu-again&attempt={digits}&mode=menu&Options%5B1%5D=https://twiml.example.org/a"
    response = flow_step(signed("POST", path, [("CallSid", "CA" + "1" * 32)]))
    assert response.status_code == 200
    assert APOLOGY in response.get_body().decode()


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_status_callback_integers_are_ascii_digits_only(digits: str) -> None:
    form = [("MessageSid", "SM" + "a" * 32), ("MessageStatus", "sent"), ("ErrorCode", digits)]
    response = status(signed("POST", "/api/status?ref=" + "0" * 32, form))
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["ErrorCode"]


def inbox_page(**params: str) -> func.HttpResponse:
    url = "http://127.0.0.1:7071/api/ops/inbox"
    return admin_inbox(func.HttpRequest("GET", url, params=params, body=b""))


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_page_size_is_ascii_digits_only(digits: str) -> None:
    response = inbox_page(pageSize=digits)
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["pageSize"]


def test_deeply_nested_json_is_400() -> None:
    body = ("[" * 20_000 + "]" * 20_000).encode()  # 40 KB, under the 64 KiB limit
    req = request("POST", "/api/sendSms", body=body, headers={"Content-Type": "application/json"})
    response = send_sms(req)
    assert response.status_code == 400
    assert problem(response)["detail"] == "The body is nested too deeply."


@pytest.mark.parametrize(
    "token",
    [
        base64.urlsafe_b64encode(b"[]").decode(),
        base64.urlsafe_b64encode(b'{"PartitionKey": 1}').decode(),
        base64.urlsafe_b64encode(b'{"x": "y"}').decode(),
        base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),
        base64.urlsafe_b64encode(b'"just a string"').decode(),
        "not base64 at all!",
    ],
)
def test_a_crafted_continuation_token_is_422(token: str) -> None:
    response = inbox_page(continuation=token)
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["continuation"]


@pytest.mark.parametrize("loop", [True, "5", 5.0])
def test_loop_is_an_integer_and_nothing_else(loop: object) -> None:
    response = make_call(
        request(
            "POST", "/api/makeCall", json_body={"to": "+14155551234", "message": "hi", "loop": loop}
        )
    )
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["loop"]


# --- trust ----------------------------------------------------------------------------------


@pytest.mark.parametrize("enabled", ["1", "yes", "on", "false"])
def test_website_auth_enabled_is_trusted_only_as_documented(
    enabled: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", enabled)
    with pytest.raises(NotAuthenticated):
        authenticate(request("GET", "/", caller="forged"))


@pytest.mark.parametrize("subject", ["", "   "])
def test_a_token_with_an_empty_subject_is_nobody(issuer: Issuer, subject: str) -> None:
    token = issuer.token(sub=subject)
    with pytest.raises(NotAuthenticated):
        authenticate(request("GET", "/", headers={"Authorization": f"Bearer {token}"}))


@pytest.mark.parametrize(
    "bind",
    ["127.evil.example:7071", "localhost.evil.example:7071", "0.0.0.0:7071", "10.0.0.5:7071"],
)
def test_development_switches_need_a_loopback_address_or_localhost_exactly(bind: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_environ({**BASE_SETTINGS, "DEVHOST_BIND": bind, "DEV_PRINCIPAL": "me"})
    assert refused.value.settings == ["DEV_PRINCIPAL"]


@pytest.mark.parametrize("bind", ["127.0.0.1:7071", "127.0.0.9:1", "[::1]:7071", "localhost:7071"])
def test_development_switches_work_on_loopback(bind: str) -> None:
    settings = Settings.from_environ({**BASE_SETTINGS, "DEVHOST_BIND": bind, "DEV_PRINCIPAL": "me"})
    assert settings.dev_principal == "me"


def test_urllib3_never_logs_the_url_while_twilio_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reconciling retry lists messages by To: its query string holds the number."""
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    caplog.set_level(logging.DEBUG)
    service = get_twilio_service()
    with pytest.raises(UpstreamUnreachable):
        service.find_messages(
            to="+14155551234",
            from_=get_settings().twilio_from_number,
            since=datetime.now(UTC),
            until=datetime.now(UTC),
        )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ACCOUNT_SID not in logged
    assert "14155551234" not in logged
    assert "/2010-04-01/" not in logged


def test_a_message_too_long_once_sealed_is_422_and_nothing_is_sent(
    twilio: responses.RequestsMock,
) -> None:
    message = "日本語のメッセージ" * 111  # 999 characters, about 9 times as long sealed
    body = {"to": "+14155551234", "message": message}
    response = make_call(request("POST", "/api/makeCall", json_body=body))
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["message"]
    assert len(twilio.calls) == 0


@pytest.mark.usefixtures("storage")
def test_a_caller_whose_id_looks_like_a_digest_never_gets_another_callers_identity() -> None:
    from api.stores.identities import identity_for

    victim = "alice@example.com"
    victims_identity = identity_for(victim)
    assert victims_identity.startswith("u_")
    assert identity_for(victims_identity) != victims_identity  # the attacker's id is digested


@pytest.mark.usefixtures("storage")
def test_an_unregistered_digest_identity_is_nobody() -> None:
    from api.edge.twilio_routes import voice

    form = [("CallSid", "CA" + "3" * 32), ("From", "client:u_" + "0" * 48), ("To", "+14155551234")]
    answer = voice(signed("POST", "/api/voice", form)).get_body().decode()
    assert APOLOGY in answer


def test_a_hanging_jwks_never_stalls_callers_whose_key_is_cached(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "JWKS_REFETCH_SECONDS", 0)
    cached = issuer.token(sub="alice")
    assert authenticate(request("GET", "/", headers={"Authorization": f"Bearer {cached}"})).id
    issuer.stall = 3.0  # from now on the identity provider hangs
    issuer.add_key("rsa-2")
    unknown = issuer.token(kid="rsa-2", sub="bob")
    outcome: list[str] = []

    def caller_with_a_new_key() -> None:
        try:
            authenticate(request("GET", "/", headers={"Authorization": f"Bearer {unknown}"}))
        except ServiceUnavailable:
            outcome.append("503")

    fetching = threading.Thread(target=caller_with_a_new_key)
    fetching.start()
    time.sleep(0.3)  # the fetch is under way, and hanging
    started = time.monotonic()
    assert authenticate(request("GET", "/", headers={"Authorization": f"Bearer {cached}"})).id == (
        "alice"
    )
    assert time.monotonic() - started < 0.5  # never waited for the fetch
    fetching.join()
    assert outcome == ["503"]  # the fetch gave up after its short timeout
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):  # the failure is remembered: no second wait
        authenticate(request("GET", "/", headers={"Authorization": f"Bearer {unknown}"}))
    assert time.monotonic() - started < 0.5
