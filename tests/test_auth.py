"""Caller authentication on the app-facing routes: Easy Auth, OIDC bearer tokens, key, dev."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
import responses

from api.core.errors import ServiceUnavailable
from api.edge import auth
from api.edge.app_routes import send_sms
from api.edge.auth import Caller, authenticate
from api.edge.warmup import warmup
from tests.support.func_requests import problem, request
from tests.support.jwks_server import AUDIENCE, ISSUER, Issuer
from tests.support.settings import MESSAGES_URL
from tests.support.twilio_api import twilio_message

SMS = {"to": "+14155551234", "body": "hi"}


# --- Easy Auth ------------------------------------------------------------------------------


def test_easy_auth_principal_is_the_caller() -> None:
    principal = base64.b64encode(
        json.dumps(
            {"auth_typ": "aad", "role_typ": "roles", "claims": [{"typ": "roles", "val": "admin"}]}
        ).encode()
    ).decode()
    req = request(
        "POST",
        "/api/sendSms",
        json_body=SMS,
        caller="abc-123",
        headers={"X-MS-CLIENT-PRINCIPAL": principal},
    )
    assert authenticate(req) == Caller("abc-123", frozenset({"admin"}))


@pytest.mark.parametrize("enabled", ["true", "True", "TRUE"])
def test_website_auth_enabled_is_read_case_insensitively(
    enabled: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", enabled)
    assert authenticate(request("GET", "/", caller="abc")).id == "abc"


def test_principal_headers_are_not_trusted_without_easy_auth(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    response = send_sms(request("POST", "/api/sendSms", json_body=SMS, caller="forged"))
    assert response.status_code == 401
    assert problem(response)["title"] == "Not authenticated"
    assert len(twilio.calls) == 0


def test_no_principal_is_401_and_nothing_is_sent(twilio: responses.RequestsMock) -> None:
    response = send_sms(request("POST", "/api/sendSms", json_body=SMS, caller=None))
    assert response.status_code == 401
    assert len(twilio.calls) == 0


def test_authentication_comes_before_validation() -> None:
    response = send_sms(request("POST", "/api/sendSms", json_body={"to": "bad"}, caller=None))
    assert response.status_code == 401


def test_with_an_identity_sends_work_as_before(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    assert send_sms(request("POST", "/api/sendSms", json_body=SMS)).status_code == 201


# --- OIDC bearer tokens ----------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_names_the_caller_by_its_subject(issuer: Issuer) -> None:
    token = issuer.token(sub="oid-7", roles=["admin"])
    req = request("GET", "/", headers=bearer(token), caller="ignored-principal")
    assert authenticate(req) == Caller("oid-7", frozenset({"admin"}))


def test_es256_keys_work_too(issuer: Issuer) -> None:
    issuer.add_key("ec-1", curve=True)
    assert (
        authenticate(request("GET", "/", headers=bearer(issuer.token(kid="ec-1")))).id == "user-42"
    )


def test_a_missing_token_is_401_with_a_bearer_challenge(
    issuer: Issuer, twilio: responses.RequestsMock
) -> None:
    response = send_sms(request("POST", "/api/sendSms", json_body=SMS))
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    assert len(twilio.calls) == 0


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1_000_000},  # long expired
        {"nbf": 4_000_000_000},  # not yet valid
        {"aud": "api://someone-else"},
        {"iss": "https://evil.example.com"},
        {"sub": None},
        {"exp": None},
    ],
)
def test_invalid_tokens_are_401_invalid_token(
    issuer: Issuer, twilio: responses.RequestsMock, claims: dict[str, Any]
) -> None:
    token = issuer.token(**claims)
    response = send_sms(request("POST", "/api/sendSms", json_body=SMS, headers=bearer(token)))
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate") == 'Bearer error="invalid_token"'
    assert len(twilio.calls) == 0


def test_the_algorithm_is_never_taken_from_the_token(issuer: Issuer) -> None:
    import jwt

    public_pem = issuer.jwks()["keys"][0]["n"]
    forged_hs = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 4_000_000_000},
        public_pem,
        algorithm="HS256",
        headers={"kid": "rsa-1"},
    )
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 4_000_000_000},
        None,  # type: ignore[arg-type]  # alg "none" takes no key
        algorithm="none",
        headers={"kid": "rsa-1"},
    )
    for token in (forged_hs, unsigned, "not.a.jwt", "garbage"):
        with pytest.raises(auth.NotAuthenticated):
            authenticate(request("GET", "/", headers=bearer(token)))


def test_a_token_signed_by_an_unpublished_key_is_refused(issuer: Issuer) -> None:
    issuer.add_key("rogue", publish=False)
    with pytest.raises(auth.NotAuthenticated):
        authenticate(request("GET", "/", headers=bearer(issuer.token(kid="rogue"))))


def test_the_jwks_is_cached_and_refetched_on_an_unknown_kid_at_most_once_a_minute(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    for _ in range(3):
        authenticate(request("GET", "/", headers=bearer(issuer.token())))
    assert issuer.fetches == 1
    issuer.add_key("rsa-2")  # the issuer rotates in a new key
    clock[0] += 10  # within the minute: no refetch, so the new kid is unknown
    with pytest.raises(auth.NotAuthenticated):
        authenticate(request("GET", "/", headers=bearer(issuer.token(kid="rsa-2"))))
    assert issuer.fetches == 1
    clock[0] += 60
    assert authenticate(request("GET", "/", headers=bearer(issuer.token(kid="rsa-2")))).id
    assert issuer.fetches == 2


def test_jwt_mode_needs_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLER_AUTH", "jwt")
    response = send_sms(request("POST", "/api/sendSms", json_body=SMS))
    assert response.status_code == 500
    assert problem(response)["settings"] == ["OIDC_AUDIENCE", "OIDC_ISSUER", "OIDC_JWKS_URL"]


# --- servers' named keys, key mode and DEV_PRINCIPAL --------------------------------------------

SERVER_KEY = "server-key-0123456789abcdef0123456789"
NEXT_SERVER_KEY = "server-key-rotated-fedcba9876543210"


def named(name: str, key: str) -> str:
    import hashlib

    return f"{name}:{hashlib.sha256(key.encode()).hexdigest()}"


def with_key(key: str) -> dict[str, str]:
    return {"X-Ahoy-Key": key}


@pytest.mark.parametrize("mode", ["easyauth", "jwt", "key"])
def test_each_named_key_is_its_own_caller_in_every_mode(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("CALLER_AUTH", mode)
    monkeypatch.setenv("OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("OIDC_JWKS_URL", "https://login.example.com/keys")
    monkeypatch.setenv(
        "CALLER_KEYS", f"{named('billing', SERVER_KEY)},{named('crm', NEXT_SERVER_KEY)}"
    )
    assert authenticate(request("GET", "/", headers=with_key(SERVER_KEY), caller=None)) == (
        Caller("key:billing", name="billing")
    )
    crm = authenticate(request("GET", "/", headers=with_key(NEXT_SERVER_KEY), caller=None))
    assert crm == Caller("key:crm", name="crm")
    with pytest.raises(auth.NotAuthenticated, match="not one of CALLER_KEYS"):
        authenticate(request("GET", "/", headers=with_key("guessed"), caller=None))


def test_a_key_is_rotated_by_naming_its_caller_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CALLER_KEYS", f"{named('billing', SERVER_KEY)},{named('billing', NEXT_SERVER_KEY)}"
    )
    for key in (SERVER_KEY, NEXT_SERVER_KEY):
        caller = authenticate(request("GET", "/", headers=with_key(key), caller=None))
        assert caller.id == "key:billing"  # the same records and limits either way


def test_key_mode_takes_named_keys_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CALLER_AUTH", "key")
    monkeypatch.setenv("CALLER_KEYS", named("billing", SERVER_KEY))
    with pytest.raises(auth.NotAuthenticated, match="X-Ahoy-Key"):
        authenticate(request("GET", "/", caller=None))
    with caplog.at_level(logging.WARNING):
        warmup(None)  # type: ignore[arg-type]
    assert "only the servers named in CALLER_KEYS" in caplog.text


@pytest.mark.parametrize("keys", ["", "billing", "billing:abc", "bad name:" + "0" * 64])
def test_key_mode_needs_well_formed_caller_keys(monkeypatch: pytest.MonkeyPatch, keys: str) -> None:
    monkeypatch.setenv("CALLER_AUTH", "key")
    monkeypatch.setenv("CALLER_KEYS", keys)
    response = send_sms(request("POST", "/api/sendSms", json_body=SMS, caller=None))
    assert response.status_code == 500
    assert problem(response)["settings"] == ["CALLER_KEYS"]


def test_the_app_facing_routes_ask_the_host_for_no_key() -> None:
    # No shared secret ships in the app: Ahoy authenticates every request itself.
    from tests.support.functions import http_functions

    levels = {f.route: f.auth_level for f in http_functions()}
    for route in ("sendSms", "makeCall", "messages/{sid}", "calls/{sid}", "token", "inbox"):
        assert levels[route] == "anonymous", route
    assert levels["ops/inbox"] == "admin"


def test_dev_principal_works_under_the_local_host_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEV_PRINCIPAL", "dev-user")
    monkeypatch.setenv("DEVHOST_BIND", "127.0.0.1:7071")
    assert authenticate(request("GET", "/", caller=None)).id == "dev-user"


@pytest.mark.parametrize(
    "environment",
    [
        {},  # not served by the local host at all: Azure, a container, `func start`
        {"DEVHOST_BIND": "0.0.0.0:7071"},  # the local host, but reachable from outside
        {"DEVHOST_BIND": "127.0.0.1:7071", "WEBSITE_INSTANCE_ID": "abc"},  # on Azure
    ],
)
def test_dev_principal_anywhere_else_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, twilio: responses.RequestsMock, environment: dict[str, str]
) -> None:
    monkeypatch.setenv("DEV_PRINCIPAL", "dev-user")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    response = send_sms(request("POST", "/api/sendSms", json_body=SMS, caller=None))
    assert response.status_code == 500
    assert problem(response)["settings"] == ["DEV_PRINCIPAL"]
    assert "dev-user" not in response.get_body().decode()
    assert len(twilio.calls) == 0


# --- an issuer whose answer is broken --------------------------------------------------------


@pytest.mark.parametrize("fault", ["short", "redirect", "html", "list"])
def test_a_broken_jwks_answer_is_a_503_problem_remembered_not_refetched(
    issuer: Issuer, twilio: responses.RequestsMock, fault: str
) -> None:
    issuer.fault = fault
    headers = bearer(issuer.token())
    for _ in range(3):
        response = send_sms(request("POST", "/api/sendSms", json_body=SMS, headers=headers))
        assert response.status_code == 503
        assert response.mimetype == "application/problem+json"
        assert "keys are unavailable" in problem(response)["detail"]
        assert response.headers.get("Retry-After") == str(auth.JWKS_FAILURE_SECONDS)
    assert issuer.fetches == 1  # the failure is remembered
    assert len(twilio.calls) == 0


def test_a_trickling_issuer_is_cut_off_at_the_deadline_and_nobody_waits_on_it(
    issuer: Issuer,
) -> None:
    import threading
    import time

    issuer.fault = "trickle"  # one byte every 1.5 s: no single read ever times out
    issuer.add_key("rsa-2")
    outcome: list[float] = []

    def first_caller() -> None:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            authenticate(request("GET", "/", headers=bearer(issuer.token())))
        outcome.append(time.monotonic() - started)

    fetching = threading.Thread(target=first_caller)
    fetching.start()
    time.sleep(0.3)  # the fetch is under way
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):  # another unknown kid: 503 at once, no waiting
        authenticate(request("GET", "/", headers=bearer(issuer.token(kid="rsa-2"))))
    assert time.monotonic() - started < 0.3
    fetching.join()
    [took] = outcome
    assert auth.JWKS_DEADLINE_SECONDS <= took < auth.JWKS_DEADLINE_SECONDS + 0.5
    assert issuer.fetches == 1
