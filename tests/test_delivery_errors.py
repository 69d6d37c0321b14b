"""Failures the app can show: each delivery error code is explained as the README's table says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import responses

from api.core.delivery_errors import table
from api.edge.app_routes import get_message, list_messages, send_sms
from api.edge.twilio_routes import status
from tests.support.func_requests import request, signed
from tests.support.settings import ACCOUNT_SID, MESSAGES_URL
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_message

ROOT = Path(__file__).resolve().parents[1]
SID = "SM" + "a" * 32


def readme_table() -> dict[int, tuple[str, bool]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Why a message failed", 1)[1].split("\n\n", 3)[2]
    rows = re.findall(r"^\| (\d+) \| (.+?) \| (yes|no) \|$", section, re.MULTILINE)
    return {int(code): (title, retry == "yes") for code, title, retry in rows}


def test_the_readme_has_the_table_ahoy_answers_with() -> None:
    assert readme_table() == table()


def undelivered(twilio: responses.RequestsMock, code: int) -> dict[str, Any]:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    body = {"to": "+14155551234", "body": "hello"}
    assert send_sms(request("POST", "/api/sendSms", json_body=body)).status_code == 201
    [row] = ledger_rows()
    form = [
        ("MessageSid", SID),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", str(code)),
        ("AccountSid", ACCOUNT_SID),
    ]
    assert status(signed("POST", f"/api/status?ref={row.ref}", form)).status_code == 204
    view: dict[str, Any] = json.loads(
        get_message(request("GET", f"/api/messages/{SID}", route_params={"sid": SID})).get_body()
    )
    return view


@pytest.mark.parametrize(("code", "explained"), sorted(table().items()))
def test_each_code_is_shown_as_the_table_says(
    twilio: responses.RequestsMock, code: int, explained: tuple[str, bool]
) -> None:
    view = undelivered(twilio, code)
    title, retryable = explained
    assert view["errorCode"] == code
    assert view["error"] == {"code": code, "title": title, "retryable": retryable}
    [listed] = json.loads(list_messages(request("GET", "/api/messages")).get_body())["items"]
    assert listed["error"] == view["error"]


def test_a_code_ahoy_does_not_know_points_to_twilios_reference(
    twilio: responses.RequestsMock,
) -> None:
    error = undelivered(twilio, 30999)["error"]
    assert error == {
        "code": 30999,
        "title": "Twilio error 30999: see https://www.twilio.com/docs/api/errors/30999",
        "retryable": False,
    }
