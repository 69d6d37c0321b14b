"""The TwiML path stays light: a fresh process serving a signed /api/twiml loads nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from api.flows import seal
from api.settings import get_settings
from tests.conftest import AUTH_TOKEN, BASE_SETTINGS, PUBLIC_BASE_URL

HEAVY = ["twilio.rest", "requests", "urllib3", "aiohttp", "azure.data.tables", "pydantic", "jwt"]

FRESH_PROCESS = """
import asyncio, json, sys
import azure.functions as func
import function_app
from api.twilio_routes import twiml
url, signature, body = sys.argv[1:4]
response = asyncio.run(twiml(func.HttpRequest("POST", url, body=body.encode(), headers={
    "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})))
print(json.dumps({"status": response.status_code, "xml": response.get_body().decode(),
                  "loaded": [m for m in json.loads(sys.argv[4]) if m in sys.modules]}))
"""


def test_a_signed_twiml_request_in_a_fresh_process_imports_nothing_heavy() -> None:
    token = seal(
        [("Message[0]", "Hello from Ahoy")],
        caller="user-1",
        ttl_seconds=60,
        key=get_settings().flow_key.get(),
    )
    url = f"{PUBLIC_BASE_URL}/api/twiml?flow={token}"
    form = {"CallSid": "CA" + "1" * 32, "CallStatus": "in-progress"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    out = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, url, signature, urlencode(form), json.dumps(HEAVY)],
        cwd=Path(__file__).parents[1],
        env={**BASE_SETTINGS, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out)
    assert result["status"] == 200
    assert "<Say>Hello from Ahoy</Say>" in result["xml"]
    assert result["loaded"] == []
