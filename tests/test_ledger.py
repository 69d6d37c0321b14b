"""The ledger: every accepted send is written before Twilio is asked, and kept up to date."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from api.edge.app_routes import get_call, get_message, make_call, send_sms
from api.edge.twilio_routes import status
from api.stores.storage import table
from tests.support.azurite import Azurite
from tests.support.func_requests import problem, request, signed
from tests.support.settings import ACCOUNT_SID, CALLS_URL, MESSAGES_URL, reset_caches
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_call, twilio_error, twilio_message

TO = "+14155551234"
SMS = {"to": TO, "body": "ahoy hoy"}
SID = "SM" + "a" * 32
REFUSED = MaxRetryError(None, "/", NewConnectionError(None, "refused"))  # type: ignore[arg-type]


def post_sms() -> func.HttpResponse:
    return send_sms(request("POST", "/api/sendSms", json_body=SMS))


def test_the_row_is_written_before_twilio_is_asked(twilio: responses.RequestsMock) -> None:
    seen: list[list[str]] = []

    def twilio_answers(_: object) -> tuple[int, dict[str, str], str]:
        seen.append([row.state for row in ledger_rows()])
        return 201, {}, json.dumps(twilio_message())

    twilio.add_callback("POST", MESSAGES_URL, callback=twilio_answers)
    assert post_sms().status_code == 201
    assert seen == [["pending"]]
    [row] = ledger_rows()
    assert (row.state, row.sid, row.status, row.kind, row.caller, row.to) == (
        "sent",
        SID,
        "queued",
        "sms",
        "user-1",
        TO,
    )


def test_get_message_shows_the_callers_own_record(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    post_sms()
    response = get_message(request("GET", f"/api/messages/{SID}", route_params={"sid": SID}))
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert (body["sid"], body["status"], body["state"], body["to"]) == (SID, "queued", "sent", TO)
    assert [h["status"] for h in body["history"]] == ["queued"]


def test_get_finds_a_send_before_its_first_callback_and_by_its_index_after(
    twilio: responses.RequestsMock,
) -> None:
    """A send writes its row only; Twilio's first status callback indexes it by SID."""
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    post_sms()

    def shown() -> tuple[int, str]:
        response = get_message(request("GET", f"/api/messages/{SID}", route_params={"sid": SID}))
        return response.status_code, json.loads(response.get_body()).get("status")

    def index_rows() -> list[str]:
        return [e["RowKey"] for e in table("ledger").list_entities() if e["RowKey"][:4] == "sid-"]

    assert index_rows() == []
    assert shown() == (200, "queued")  # found by a query of the caller's partition
    [row] = ledger_rows()
    for state in ("sent", "delivered"):
        form = [("MessageSid", SID), ("MessageStatus", state), ("AccountSid", ACCOUNT_SID)]
        assert status(signed("POST", f"/api/status?ref={row.ref}", form)).status_code == 204
        assert index_rows() == [f"sid-{SID}"]
        assert shown() == (200, state)
    not_a_sid = request("GET", "/api/messages/SMx", route_params={"sid": "SMx"})
    assert get_message(not_a_sid).status_code == 404


def test_nobody_else_sees_it(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    post_sms()
    other = request("GET", f"/api/messages/{SID}", route_params={"sid": SID}, caller="user-2")
    assert get_message(other).status_code == 404
    as_call = request("GET", f"/api/calls/{SID}", route_params={"sid": SID})
    assert get_call(as_call).status_code == 404


def test_a_call_gets_its_row_too(twilio: responses.RequestsMock) -> None:
    twilio.post(CALLS_URL, json=twilio_call(), status=201)
    make_call(request("POST", "/api/makeCall", json_body={"to": TO, "message": "hi"}))
    sid = "CA" + "b" * 32
    body = json.loads(
        get_call(request("GET", f"/api/calls/{sid}", route_params={"sid": sid})).get_body()
    )
    assert (body["state"], body["status"]) == ("sent", "queued")


def test_a_twilio_refusal_is_failed_with_its_code(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_error(400, 21610), status=400)
    assert post_sms().status_code == 422
    [row] = ledger_rows()
    assert (row.state, row.error_code) == ("failed", 21610)


@pytest.mark.parametrize(
    ("failure", "status", "state"),
    [
        (requests.ReadTimeout("read timed out"), 504, "unknown"),
        (
            requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
            502,
            "unknown",
        ),
        (
            requests.ConnectionError(REFUSED),
            502,
            "failed",
        ),
        (requests.ConnectTimeout("connect timed out"), 502, "failed"),
    ],
)
def test_lost_answers_are_unknown_and_unsent_requests_failed(
    twilio: responses.RequestsMock, failure: Exception, status: int, state: str
) -> None:
    twilio.post(MESSAGES_URL, body=failure)
    response = post_sms()
    assert response.status_code == status
    assert ("unknown" in problem(response)["detail"]) == (state == "unknown")
    [row] = ledger_rows()
    assert row.state == state


def test_twilio_5xx_is_502_and_unknown(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_error(500, 20500), status=500)
    assert post_sms().status_code == 502
    assert [row.state for row in ledger_rows()] == ["unknown"]


@pytest.fixture
def storage_that_goes_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, twilio: responses.RequestsMock
) -> Iterator[Azurite]:
    server = Azurite(tmp_path / "azurite").start()
    twilio.add_passthru(f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("AzureWebJobsStorage", server.connection_string)
    reset_caches()
    yield server
    server.stop()


def test_storage_down_mid_run_is_503_and_nothing_is_sent(
    twilio: responses.RequestsMock, storage_that_goes_down: Azurite
) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    assert post_sms().status_code == 201
    storage_that_goes_down.stop()
    response = post_sms()
    assert response.status_code == 503
    body = problem(response)
    assert body["detail"] == "Storage is unavailable; nothing was sent."
    assert "Traceback" not in response.get_body().decode()
    assert response.headers.get("Retry-After")
    assert len(twilio.calls) == 1
