"""In-app calling: Voice SDK tokens for the signed-in caller, and the TwiML App's Voice URL."""

from __future__ import annotations

import json
import time
from typing import Any

import azure.functions as func
import jwt
import pytest

from api.edge.app_routes import get_call, token
from api.edge.twilio_routes import voice
from api.stores.identities import identity_for
from tests.support.func_requests import problem, request, run_twiml, signed
from tests.support.settings import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    FROM_NUMBER,
    TWIML_APP_SID,
    reset_caches,
)
from tests.support.tables import ledger_rows

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
REFUSAL = (
    f"{DECLARATION}<Response><Say>Sorry, this call cannot be completed. Goodbye.</Say>"
    "<Hangup /></Response>"
)

pytestmark = pytest.mark.usefixtures("storage")  # identities, ledger and limits


@pytest.fixture(autouse=True)
def voice_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    monkeypatch.setenv("TWILIO_TWIML_APP_SID", TWIML_APP_SID)


def get_token(caller: str | None = "user_1", path: str = "/api/token") -> func.HttpResponse:
    return token(request("GET", path, caller=caller))


def decode(raw: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(raw, API_KEY_SECRET, algorithms=["HS256"])
    return claims


# --- tokens ------------------------------------------------------------------------------


def test_a_token_for_the_signed_in_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_PUSH_CREDENTIAL_SID", "CR" + "7" * 32)
    before = int(time.time())
    response = get_token()
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") == "no-store"
    body = json.loads(response.get_body())
    claims = decode(body["token"])
    assert claims["iss"] == API_KEY_SID
    assert claims["sub"] == ACCOUNT_SID
    assert claims["grants"] == {
        "identity": "user_1",
        "voice": {
            "incoming": {"allow": True},
            "outgoing": {"application_sid": TWIML_APP_SID},
            "push_credential_sid": "CR" + "7" * 32,
        },
    }
    assert body["identity"] == "user_1"
    assert before + 3600 <= claims["exp"] <= int(time.time()) + 3600
    assert body["expiresAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))


def test_the_identity_comes_from_the_principal_never_the_request() -> None:
    response = token(
        request(
            "POST",
            "/api/token?identity=alice",
            json_body={"identity": "alice"},
            caller="bob_42",
        )
    )
    assert decode(json.loads(response.get_body())["token"])["grants"]["identity"] == "bob_42"


@pytest.mark.parametrize("caller", ["user-1", "user@example.com|tenant/7", "x" * 122])
def test_ids_twilio_would_not_take_become_a_stable_digest(caller: str) -> None:
    identity = json.loads(get_token(caller=caller).get_body())["identity"]
    assert identity == identity_for(caller) == identity_for(caller)
    assert identity.startswith("u_")
    assert len(identity) <= 121


def test_the_lifetime_is_a_setting_with_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "600")
    claims = decode(json.loads(get_token().get_body())["token"])
    assert claims["exp"] - claims["nbf"] <= 600
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "86401")
    reset_caches()
    assert problem(get_token())["settings"] == ["TOKEN_TTL_SECONDS"]


PUSH = {
    "TWILIO_PUSH_CREDENTIAL_SID": "CR" + "0" * 32,
    "TWILIO_PUSH_CREDENTIAL_SID_IOS": "CR" + "1" * 32,
    "TWILIO_PUSH_CREDENTIAL_SID_IOS_SANDBOX": "CR" + "2" * 32,
    "TWILIO_PUSH_CREDENTIAL_SID_ANDROID": "CR" + "3" * 32,
}


@pytest.mark.parametrize(
    ("platform", "setting"),
    [
        ("ios", "TWILIO_PUSH_CREDENTIAL_SID_IOS"),  # APNs VoIP, store builds
        ("ios-sandbox", "TWILIO_PUSH_CREDENTIAL_SID_IOS_SANDBOX"),  # development builds
        ("android", "TWILIO_PUSH_CREDENTIAL_SID_ANDROID"),  # FCM
        (None, "TWILIO_PUSH_CREDENTIAL_SID"),  # no platform named: the default
    ],
)
def test_each_platform_gets_its_own_push_credential(
    monkeypatch: pytest.MonkeyPatch, platform: str | None, setting: str
) -> None:
    for name, value in PUSH.items():
        monkeypatch.setenv(name, value)
    path = "/api/token" + (f"?platform={platform}" if platform else "")
    body = json.loads(get_token(path=path).get_body())
    assert decode(body["token"])["grants"]["voice"]["push_credential_sid"] == PUSH[setting]
    assert (body["platform"], body["pushCredentialSid"]) == (platform, PUSH[setting])


def test_a_platform_with_no_credential_gets_the_default_or_none_and_is_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_PUSH_CREDENTIAL_SID_IOS", PUSH["TWILIO_PUSH_CREDENTIAL_SID_IOS"])
    body = json.loads(get_token(path="/api/token?platform=android").get_body())
    assert "push_credential_sid" not in decode(body["token"])["grants"]["voice"]
    assert body["pushCredentialSid"] is None  # this device will not ring by push
    monkeypatch.setenv("TWILIO_PUSH_CREDENTIAL_SID", PUSH["TWILIO_PUSH_CREDENTIAL_SID"])
    reset_caches()
    body = json.loads(get_token(path="/api/token?platform=android").get_body())
    assert body["pushCredentialSid"] == PUSH["TWILIO_PUSH_CREDENTIAL_SID"]


@pytest.mark.parametrize("platform", ["windows", "IOS", "ios%20sandbox", "apns"])
def test_an_unknown_platform_is_422_and_no_token(platform: str) -> None:
    response = get_token(path=f"/api/token?platform={platform}")
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["platform"]
    assert "token" not in json.loads(response.get_body())


def test_unauthenticated_callers_get_401_and_no_token() -> None:
    response = get_token(caller=None)
    assert response.status_code == 401
    assert "token" not in json.loads(response.get_body())


@pytest.mark.parametrize("missing", ["TWILIO_API_KEY_SID", "TWILIO_TWIML_APP_SID"])
def test_missing_settings_are_500_naming_them(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)
    if missing == "TWILIO_API_KEY_SID":
        monkeypatch.delenv("TWILIO_API_KEY_SECRET")
    body = problem(get_token())
    assert body["status"] == 500
    assert missing in body["settings"]


# --- the Voice URL -----------------------------------------------------------------------


def place(to: str | None, sender: str = "client:user_1") -> str:
    form = [("CallSid", "CA" + "9" * 32), ("AccountSid", ACCOUNT_SID), ("From", sender)]
    if to is not None:
        form.append(("To", to))
    response = voice(signed("POST", "/api/voice", form))
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    return response.get_body().decode()


def test_a_number_is_dialled_from_the_apps_number_with_a_ledger_row() -> None:
    xml = place("+14155551234")
    [row] = ledger_rows()
    assert xml == (
        f'{DECLARATION}<Response><Dial answerOnBridge="true" callerId="{FROM_NUMBER}">'
        '<Number statusCallback="https://ahoy.example.net/api/status?ref='
        f'{row.ref}#ct=3000&amp;rt=6000&amp;tt=14000&amp;rc=2&amp;rp=ct,rt,5xx" '
        'statusCallbackEvent="initiated ringing answered completed" '
        'statusCallbackMethod="POST">+14155551234</Number></Dial></Response>'
    )
    assert (row.caller, row.kind, row.to, row.state) == (
        "user_1",
        "call",
        "+14155551234",
        "pending",
    )


def test_the_call_is_the_callers_once_twilio_reports_it() -> None:
    from api.edge.twilio_routes import status

    place("+14155551234")
    [row] = ledger_rows()
    sid = "CA" + "8" * 32
    form = [("CallSid", sid), ("CallStatus", "ringing"), ("SequenceNumber", "1")]
    assert status(signed("POST", f"/api/status?ref={row.ref}", form)).status_code == 204
    view = get_call(request("GET", f"/api/calls/{sid}", route_params={"sid": sid}, caller="user_1"))
    assert json.loads(view.get_body())["status"] == "ringing"
    other = request("GET", f"/api/calls/{sid}", route_params={"sid": sid}, caller="user-2")
    assert get_call(other).status_code == 404


def test_a_client_is_rung_app_to_app() -> None:
    assert place("client:alice_2") == (
        f'{DECLARATION}<Response><Dial answerOnBridge="true"><Client>alice_2</Client>'
        "</Dial></Response>"
    )


@pytest.mark.parametrize("to", [None, "", "nobody", "sip:alice@example.org", "client:a b"])
def test_no_or_invalid_to_is_a_short_message_and_hangup(to: str | None) -> None:
    assert place(to) == REFUSAL
    assert ledger_rows() == []


@pytest.mark.parametrize("to", ["+19005550100", "+447400123456", "+15005550006"])
def test_refused_destinations_render_the_refusal_and_count_nothing(to: str) -> None:
    assert place(to) == REFUSAL
    assert ledger_rows() == []


def test_the_identitys_limits_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "1")
    assert "<Dial" in place("+14155551234")
    assert place("+14155559876") == REFUSAL
    assert [row.state for row in ledger_rows()] == ["pending"]  # the refusal cost no row


def test_a_digest_identity_maps_back_to_its_caller() -> None:
    caller = "user@example.com"
    identity = json.loads(get_token(caller=caller).get_body())["identity"]
    place("+14155551234", sender=f"client:{identity}")
    [row] = ledger_rows()
    assert row.caller == caller


def test_a_caller_that_is_not_an_app_user_is_refused() -> None:
    assert place("+14155551234", sender="+14155550111") == REFUSAL


def test_a_forged_signature_is_403() -> None:
    req = request(
        "POST",
        "/api/voice",
        body=b"From=client%3Auser-1&To=%2B14155551234",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": "Zm9yZ2Vk",
        },
        caller=None,
    )
    assert voice(req).status_code == 403
    assert ledger_rows() == []


# --- inbound calls to an app user --------------------------------------------------------


def test_an_incoming_call_flow_rings_a_client() -> None:
    response = run_twiml(signed("POST", "/api/twiml?mode=client&Identity=user_1", []))
    assert response.get_body().decode() == (
        f'{DECLARATION}<Response><Dial answerOnBridge="true"><Client>user_1</Client>'
        "</Dial></Response>"
    )


@pytest.mark.parametrize("query", ["mode=client", "mode=client&Identity=a%20b", "mode=echo"])
def test_bad_client_flows_apologise(query: str) -> None:
    response = run_twiml(signed("POST", f"/api/twiml?{query}", []))
    assert response.get_body().decode() == REFUSAL
