"""Shared fixtures: app settings for tests, real func.HttpRequest objects, Twilio mocked by HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
import responses

from api.settings import get_settings
from api.twilio_service import get_twilio_service

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789"
FROM_NUMBER = "+14155550100"
PUBLIC_BASE_URL = "https://ahoy.example.net"
FLOW_KEY = base64.b64encode(bytes(range(32))).decode()
TWILIO_API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
MESSAGES_URL = f"{TWILIO_API}/Messages.json"
CALLS_URL = f"{TWILIO_API}/Calls.json"

BASE_SETTINGS = {
    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "TWILIO_FROM_NUMBER": FROM_NUMBER,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    "AHOY_FLOW_KEY": FLOW_KEY,
    "ALLOWED_TWIML_HOSTS": "twiml.example.org",
}

OPTIONAL_SETTINGS = [
    "TWILIO_API_KEY_SID",
    "TWILIO_API_KEY_SECRET",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
    "TWILIO_REGION",
    "TWILIO_EDGE",
    "FLOW_TTL_SECONDS",
]


def reset_caches() -> None:
    get_settings.cache_clear()
    get_twilio_service.cache_clear()


@pytest.fixture(autouse=True)
def app_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Every test starts from the base settings (and none of the optional ones)."""
    for name in [*BASE_SETTINGS, *OPTIONAL_SETTINGS]:
        monkeypatch.delenv(name, raising=False)
    for name, value in BASE_SETTINGS.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    yield dict(BASE_SETTINGS)
    reset_caches()


@pytest.fixture
def twilio() -> Iterator[responses.RequestsMock]:
    """Twilio's REST API, mocked at the HTTP layer; every registered answer must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def request(
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> func.HttpRequest:
    """A real func.HttpRequest as the Functions host would hand it to a handler."""
    all_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    return func.HttpRequest(method, f"http://127.0.0.1:7071{path}", headers=all_headers, body=body)


def problem(response: func.HttpResponse) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = json.loads(response.get_body())
    assert body["status"] == response.status_code
    return body


def twilio_message(**overrides: Any) -> dict[str, Any]:
    """A Messages resource as Twilio returns it."""
    resource = {
        "sid": "SM" + "a" * 32,
        "account_sid": ACCOUNT_SID,
        "status": "queued",
        "to": "+14155551234",
        "from": FROM_NUMBER,
        "body": "ahoy hoy",
        "date_created": "Sat, 28 Nov 2026 00:00:00 +0000",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'a' * 32}.json",
    }
    resource.update(overrides)
    return resource


def twilio_call(**overrides: Any) -> dict[str, Any]:
    """A Calls resource as Twilio returns it."""
    resource = {
        "sid": "CA" + "b" * 32,
        "account_sid": ACCOUNT_SID,
        "status": "queued",
        "to": "+14155551234",
        "from": FROM_NUMBER,
        "date_created": "Sat, 28 Nov 2026 00:00:00 +0000",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA{'b' * 32}.json",
    }
    resource.update(overrides)
    return resource


def twilio_error(status: int, code: int, message: str = "refused") -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
