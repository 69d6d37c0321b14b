"""Every HTTP route, every method, with every kind of hostile input found so far: the answer is
always a problem document, TwiML or the route's own JSON, never a bare 500.

Requests are signed as Twilio signs them and carry an Easy Auth caller, so that the input gets
past the checks of identity and reaches the parsing it is meant to break.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

import azure.functions as func
import pytest
import responses
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from tests.support.functions import HttpFunction, http_functions
from tests.support.settings import (
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    CALLER_ID,
    PUBLIC_BASE_URL,
    TWIML_APP_SID,
    reset_caches,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
DIGITS = "²"  # a Unicode digit that int() takes and Ahoy must not
ARABIC = "٣"


@dataclass(frozen=True)
class Hostile:
    name: str
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] | None = None
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    route_value: str = "SM" + "a" * 32


CRAFTED_TOKEN = base64.urlsafe_b64encode(b'{"PartitionKey": 1}').decode()
HOSTILE = [
    Hostile(
        "unicode digits everywhere",
        query=[
            ("pageSize", DIGITS),
            ("attempt", ARABIC),
            ("Loop", "３"),
            ("Length", "1" + DIGITS),
            ("Pause[0]", DIGITS),
            ("Message[" + DIGITS + "]", "x"),
            ("Message[0]", "hi"),
            ("ref", DIGITS),
            ("step", "menu-again"),
            ("mode", "menu"),
            ("Options[1]", "https://twiml.example.org/a"),
        ],
        form=[
            ("ErrorCode", DIGITS),
            ("SequenceNumber", ARABIC),
            ("CallDuration", "３"),
            ("RecordingDuration", "1" + DIGITS),
            ("Digits", ARABIC),
            ("NumMedia", DIGITS),
            ("CallSid", "CA" + DIGITS * 32),
            ("MessageSid", "SM" + "a" * 32),
            ("MessageStatus", "sent"),
            ("CallStatus", "completed"),
            ("From", "+1415555" + DIGITS),
            ("To", "client:" + DIGITS),
            ("Body", "STOP" + DIGITS),
        ],
        route_value=DIGITS,
    ),
    Hostile(
        "crafted tokens and ambiguous URLs",
        query=[("continuation", CRAFTED_TOKEN), ("flow", "\x00\xff.."), ("ref", "../" * 20)],
        form=[
            ("RecordingSid", "RE" + "0" * 32),
            ("RecordingUrl", "https://evil.example\\@api.twilio.com/x"),
            ("CallSid", "CA" + "1" * 32),
            ("From", "+14155551234"),
            ("To", "+14155550100"),
            ("Body", "ＳＴＯＰ"),
        ],
        route_value="../../admin",
    ),
    Hostile("deeply nested JSON", body=b"[" * 20_000 + b"]" * 20_000, content_type=JSON),
    Hostile(
        "loose JSON types",
        body=json.dumps(
            {
                "to": 5,
                "body": ["x"],
                "message": {"a": 1},
                "loop": True,
                "mediaUrl": "http://127.1/x",
                "url": "https://evil.example\\@twiml.example.org/x",
                "from": None,
                "identity": 1.5,
            }
        ).encode(),
        content_type=JSON,
    ),
    Hostile("JSON that is not an object", body=b"[1e999, NaN]", content_type=JSON),
    Hostile("bytes that are not UTF-8", body=b"\xff\xfe{\x00", content_type=JSON),
    Hostile("a form full of nothing", form=[("", ""), ("=", "&"), ("Body", "\x00")]),
    Hostile(
        "hostile headers",
        body=b'{"to": "+14155551234", "body": "hi"}',
        content_type="application/json; charset=utf-7",
        headers={"Idempotency-Key": "ключ", "Accept": "*/*;q=x"},
    ),
]

CASES = [
    pytest.param(function, method, hostile, id=f"{method} {function.route} {hostile.name}")
    for function in http_functions()
    for method in function.methods
    for hostile in HOSTILE
]


@pytest.fixture(autouse=True)
def every_feature_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Voice SDK's settings too, so that /api/token is reached, not refused as unset."""
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    monkeypatch.setenv("TWILIO_TWIML_APP_SID", TWIML_APP_SID)
    reset_caches()


def hostile_request(function: HttpFunction, method: str, hostile: Hostile) -> func.HttpRequest:
    route_params = dict.fromkeys(re.findall(r"\{(\w+)\}", function.route), hostile.route_value)
    path = "/api/" + re.sub(r"\{(\w+)\}", lambda m: route_params[m.group(1)], function.route)
    query = urlencode(hostile.query)
    path_and_query = path + (f"?{query}" if query else "")
    body, content_type = hostile.body, hostile.content_type
    if hostile.form is not None:
        body, content_type = urlencode(hostile.form).encode(), FORM
    signed_params = MultiDict(hostile.form or []) if content_type == FORM else MultiDict()
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        PUBLIC_BASE_URL + path_and_query, signed_params
    )
    headers = {
        "X-Twilio-Signature": signature,
        "X-MS-CLIENT-PRINCIPAL-ID": CALLER_ID,
        **hostile.headers,
    }
    if content_type:
        headers["Content-Type"] = content_type
    return func.HttpRequest(
        method,
        f"http://127.0.0.1:7071{path_and_query}",
        headers=headers,
        params=dict(hostile.query),
        route_params=route_params,
        body=body,
    )


@pytest.mark.parametrize(("function", "method", "hostile"), CASES)
def test_no_route_answers_hostile_input_with_a_bare_500(
    function: HttpFunction, method: str, hostile: Hostile, twilio: responses.RequestsMock
) -> None:
    """Twilio is never reached (nothing is registered for it): a route that would ask it
    answers its upstream problem, which is a problem document too."""
    req = hostile_request(function, method, hostile)
    answer = function.handler(req)
    response: func.HttpResponse = asyncio.run(answer) if inspect.iscoroutine(answer) else answer
    kind = response.mimetype
    assert response.status_code != 500, response.get_body()[:300]
    if response.status_code >= 400:
        assert kind == "application/problem+json"
        document = json.loads(response.get_body())
        assert document["status"] == response.status_code
        assert "Traceback" not in document.get("detail", "")
    else:
        assert kind in ("application/json", "text/xml", "application/xml"), kind
        if kind.endswith("xml"):
            assert response.get_body().startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
