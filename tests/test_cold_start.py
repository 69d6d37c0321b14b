"""TwiML webhooks stay light: a fresh process serving a signed /api/twiml or /api/voice loads
nothing it does not use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from api.core.sealing import seal
from api.core.settings import get_settings
from tests.support.azurite import Azurite
from tests.support.settings import AUTH_TOKEN, BASE_SETTINGS, PUBLIC_BASE_URL

HEAVY = ["twilio.rest", "requests", "urllib3", "aiohttp", "azure.data.tables", "pydantic", "jwt"]
# /api/voice needs storage (identities, ledger, limits) but never pydantic or twilio.rest.
VOICE_UNUSED = ["twilio.rest", "pydantic", "jwt", "aiohttp"]

FRESH_PROCESS = """
import asyncio, inspect, json, sys
import azure.functions as func
import function_app
from api.edge import twilio_routes
handler = getattr(twilio_routes, sys.argv[1])
url, signature, body = sys.argv[2:5]
response = handler(func.HttpRequest("POST", url, body=body.encode(), headers={
    "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}))
if inspect.iscoroutine(response):
    response = asyncio.run(response)
print(json.dumps({"status": response.status_code, "xml": response.get_body().decode(),
                  "loaded": [m for m in json.loads(sys.argv[5]) if m in sys.modules]}))
"""


def _serve_in_fresh_process(
    handler: str, url: str, form: dict[str, str], watched: list[str], **settings: str
) -> dict[str, Any]:
    """Import function_app in a new interpreter, serve one signed request, report sys.modules."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    args = [handler, url, signature, urlencode(form), json.dumps(watched)]
    out = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, *args],
        cwd=Path(__file__).parents[1],
        env={**BASE_SETTINGS, **settings, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def test_a_signed_twiml_request_in_a_fresh_process_imports_nothing_heavy() -> None:
    token = seal(
        [("Message[0]", "Hello from Ahoy")],
        caller="user-1",
        ttl_seconds=60,
        key=get_settings().flow_key.get(),
    )
    url = f"{PUBLIC_BASE_URL}/api/twiml?flow={token}"
    form = {"CallSid": "CA" + "1" * 32, "CallStatus": "in-progress"}
    result = _serve_in_fresh_process("twiml", url, form, HEAVY)
    assert result["status"] == 200
    assert "<Say>Hello from Ahoy</Say>" in result["xml"]
    assert result["loaded"] == []


def test_a_signed_voice_request_in_a_fresh_process_loads_neither_pydantic_nor_twilio_rest(
    azurite: Azurite,
) -> None:
    form = {"CallSid": "CA" + "2" * 32, "From": "client:user_1", "To": "+14155550123"}
    result = _serve_in_fresh_process(
        "voice",
        f"{PUBLIC_BASE_URL}/api/voice",
        form,
        VOICE_UNUSED,
        AzureWebJobsStorage=azurite.connection_string,
        AHOY_TABLE_PREFIX="coldvoice",
    )
    assert result["status"] == 200
    assert "+14155550123</Number>" in result["xml"]
    assert result["loaded"] == []
