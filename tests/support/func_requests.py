"""Real func.HttpRequest objects as the Functions host hands them over, and readers of answers."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from tests.support.settings import AUTH_TOKEN, CALLER_ID, PUBLIC_BASE_URL


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
    # The query's values as the host passes them (empty ones dropped; see devhost.conversion).
    params = dict(parse_qsl(urlsplit(url).query))
    return func.HttpRequest(
        method, url, headers=all_headers, params=params, body=body, route_params=route_params or {}
    )


def signed(
    method: str,
    path: str,
    form: list[tuple[str, str]] | None = None,
    *,
    token: str = AUTH_TOKEN,
    algorithm: str | None = None,
    settings_header: str | None = None,
    announce: bool = True,
) -> func.HttpRequest:
    """A request as Twilio sends it: form-encoded, signed over PUBLIC_BASE_URL + path; with
    `algorithm`, signed by a Webhook Rule's shared key (`token`), which Twilio announces in
    X-Twilio-Webhooks-Signature-Settings (`settings_header` to send another one, `announce`
    False to leave the header out)."""
    from urllib.parse import urlencode

    from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator
    from werkzeug.datastructures import MultiDict

    signature = RequestValidator(token).compute_signature(
        PUBLIC_BASE_URL + path, MultiDict(form or []), algorithm
    )
    headers = {"X-Twilio-Signature": signature}
    if settings_header is None and algorithm is not None and announce:
        settings_header = f"key=webhooks_sharedkey_0123,algorithm={algorithm}"
    if settings_header is not None:
        headers[SIGNATURE_SETTINGS_HEADER] = settings_header
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    body = urlencode(form or []).encode()
    return request(method, path, body=body, headers=headers, caller=None)


# Ahoy's status callback URL, with Twilio's connection overrides (api.core.urls)
STATUS_CALLBACK = re.compile(
    re.escape(PUBLIC_BASE_URL)
    + r"/api/status\?ref=[0-9a-f]{32}#ct=3000&rt=6000&tt=14000&rc=2&rp=ct,rt,5xx"
)


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
    from api.edge.twilio_routes import twiml

    response: func.HttpResponse = asyncio.run(twiml(req))
    return response


def problem(response: func.HttpResponse) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = json.loads(response.get_body())
    assert body["status"] == response.status_code
    return body
