"""Shared fixtures: app settings for tests, real func.HttpRequest objects, Twilio mocked by HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest
import responses

from api.settings import get_settings
from api.storage import get_tables
from api.twilio_service import get_twilio_service
from tests.support.azurite import Azurite
from tests.support.devhost_process import DevHost
from tests.support.twilio_standin import TwilioStandIn

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
    "WEBSITE_AUTH_ENABLED": "true",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",  # the tests point it at their Azurite
    # Limits out of the way; the tests of limits set their own.
    "RATE_LIMIT_PER_MINUTE": "100000",
    "DAILY_QUOTA": "100000",
    "DESTINATION_LIMIT_PER_HOUR": "100000",
    "GLOBAL_DAILY_CAP": "100000",
}
CALLER_ID = "user-1"
API_KEY_SID = "SK" + "5" * 32
API_KEY_SECRET = "api-key-secret-0123456789abcdef0123"  # 32+ bytes: an HMAC key
TWIML_APP_SID = "AP" + "6" * 32

OPTIONAL_SETTINGS = [
    "TWILIO_API_KEY_SID",
    "TWILIO_API_KEY_SECRET",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
    "TWILIO_REGION",
    "TWILIO_EDGE",
    "FLOW_TTL_SECONDS",
    "AHOY_TABLE_PREFIX",
    "IDEMPOTENCY_TTL_HOURS",
    "CALL_TIME_LIMIT_SECONDS",
    "TWILIO_TWIML_APP_SID",
    "TWILIO_PUSH_CREDENTIAL_SID",
    "TOKEN_TTL_SECONDS",
    "CALLER_AUTH",
    "OIDC_ISSUER",
    "OIDC_AUDIENCE",
    "OIDC_JWKS_URL",
    "DEV_PRINCIPAL",
    "DEVHOST_BIND",
    "TWILIO_VALIDATE_SIGNATURES",
    "TWILIO_AUTH_TOKEN_SECONDARY",
    "TWILIO_SANDBOX",
    "ALLOWED_COUNTRIES",
    "ALLOWED_NUMBER_TYPES",
    "WEBSITE_INSTANCE_ID",
    "WEBSITE_SITE_NAME",
]


# Never in a log line: what the suite uses as secrets, destinations and message bodies.
NEVER_LOGGED = [
    AUTH_TOKEN,
    FLOW_KEY,
    "key-secret",
    API_KEY_SECRET,
    "next-token",
    "+14155551234",
    "14155551234",
    "ahoy hoy",
    "secret meeting at noon",
]
JWT_SHAPE = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.")


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def no_secrets_in_logs() -> Iterator[None]:
    """Every test doubles as a leak check: all log output at DEBUG, from every logger."""
    capture = _LogCapture()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    yield
    root.removeHandler(capture)
    root.setLevel(level)
    leaks = [
        line
        for line in capture.lines
        if JWT_SHAPE.search(line) or any(secret in line for secret in NEVER_LOGGED)
    ]
    assert not leaks, f"secrets or personal data in logs: {leaks}"


def reset_caches() -> None:
    get_settings.cache_clear()
    get_twilio_service.cache_clear()
    get_tables.cache_clear()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Real Azure Table Storage (Azurite) for the whole run, on a free port, fresh data."""
    server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def app_settings(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> Iterator[dict[str, str]]:
    """Every test starts from the base settings, and its own fresh tables in Azurite."""
    for name in [*BASE_SETTINGS, *OPTIONAL_SETTINGS]:
        monkeypatch.delenv(name, raising=False)
    for name, value in BASE_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("AHOY_TABLE_PREFIX", f"t{uuid.uuid4().hex[:12]}")
    reset_caches()
    yield dict(BASE_SETTINGS)
    reset_caches()


@pytest.fixture
def twilio(azurite: Azurite) -> Iterator[responses.RequestsMock]:
    """Twilio's REST API, mocked at the HTTP layer; every registered answer must be used.

    azure-data-tables sends through requests too: Azurite's traffic passes through.
    """
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_passthru(f"http://127.0.0.1:{azurite.port}")
        yield mock


def request(
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    caller: str | None = CALLER_ID,
    route_params: dict[str, str] | None = None,
) -> func.HttpRequest:
    """A real func.HttpRequest as the Functions host hands it over (signed in via Easy Auth)."""
    all_headers = dict(headers or {})
    if caller is not None:
        all_headers.setdefault("X-MS-CLIENT-PRINCIPAL-ID", caller)
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    url = path if path.startswith("http") else f"http://127.0.0.1:7071{path}"
    return func.HttpRequest(
        method, url, headers=all_headers, body=body, route_params=route_params or {}
    )


def signed(
    method: str,
    path: str,
    form: list[tuple[str, str]] | None = None,
    *,
    token: str = AUTH_TOKEN,
) -> func.HttpRequest:
    """A request as Twilio sends it: form-encoded, signed over PUBLIC_BASE_URL + path."""
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator
    from werkzeug.datastructures import MultiDict

    signature = RequestValidator(token).compute_signature(
        PUBLIC_BASE_URL + path, MultiDict(form or [])
    )
    headers = {"X-Twilio-Signature": signature}
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    body = urlencode(form or []).encode()
    return request(method, path, body=body, headers=headers, caller=None)


STATUS_CALLBACK = re.compile(re.escape(PUBLIC_BASE_URL) + r"/api/status\?ref=[0-9a-f]{32}")


def eventually(probe: Callable[[], Any], timeout: float = 10) -> Any:
    """Polls `probe` until it returns something truthy or time runs out; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def sent_form(call: Any) -> dict[str, list[str]]:
    """The form a mocked Twilio request carried, with its StatusCallback checked and dropped."""
    from urllib.parse import parse_qs

    form = parse_qs(str(call.request.body))
    callbacks = form.pop("StatusCallback")
    assert len(callbacks) == 1
    assert STATUS_CALLBACK.fullmatch(callbacks[0])
    return form


def run_twiml(req: func.HttpRequest) -> func.HttpResponse:
    """Await the async /api/twiml function, as the worker's event loop does."""
    from api.twilio_routes import twiml

    response: func.HttpResponse = asyncio.run(twiml(req))
    return response


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


@pytest.fixture(scope="session")
def standin() -> Iterator[TwilioStandIn]:
    """Twilio's REST API on loopback, for tests whose Ahoy runs in another process."""
    with TwilioStandIn() as server:
        yield server


def devhost_settings(standin: TwilioStandIn, azurite: Azurite) -> dict[str, str]:
    return {
        **BASE_SETTINGS,
        "TWILIO_API_BASE_URL": standin.url,
        "DEV_PRINCIPAL": "dev-user",
        "AzureWebJobsStorage": azurite.connection_string,
        "AHOY_TABLE_PREFIX": "devhost",
        "TWILIO_API_KEY_SID": API_KEY_SID,
        "TWILIO_API_KEY_SECRET": API_KEY_SECRET,
        "TWILIO_TWIML_APP_SID": TWIML_APP_SID,
    }


@pytest.fixture(scope="session")
def devhost(
    standin: TwilioStandIn, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """Ahoy under its local host on loopback, signed in as DEV_PRINCIPAL, Twilio = standin."""
    process = DevHost(devhost_settings(standin, azurite), tmp_path_factory.mktemp("devhost"))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def ledger_rows() -> list[Any]:
    """Every send row in this test's ledger table (read straight from Azurite)."""
    from api.ledger import ROW, TABLE, Row

    table = get_tables()(TABLE)
    return [Row.from_entity(e) for e in table.query_entities(f"RowKey eq '{ROW}'")]
