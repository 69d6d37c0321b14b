"""Storage failing around a send, cut at chosen moments by a proxy in front of a running
Azurite (killing Azurite would lose its last writes): the caller always hears the truth, and a
retry with the same key settles that one send, never a second."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest
import responses

from api import clock, idempotency, ledger
from api.app_routes import send_sms
from api.models import SendSmsRequest
from tests.support.azurite import Azurite
from tests.support.fleet import connection_string
from tests.support.func_requests import problem, request
from tests.support.settings import FROM_NUMBER, MESSAGES_URL, reset_caches
from tests.support.storage_proxy import StorageProxy
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_message

BODY = {"to": "+14155551234", "body": "ahoy hoy"}
SID = "SM" + "a" * 32


@pytest.fixture
def proxy(
    storage: str, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StorageProxy]:
    """This test's tables, reached through a proxy the test can cut."""
    server = StorageProxy(f"http://127.0.0.1:{azurite.port}", delay=0).start()
    monkeypatch.setenv("AzureWebJobsStorage", connection_string(server.url))
    reset_caches()
    yield server
    server.stop()


@pytest.fixture
def twilio_via_proxy(proxy: StorageProxy) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(proxy.url)
        yield mock


def post(key: str) -> func.HttpResponse:
    headers = {"Idempotency-Key": key}
    return send_sms(request("POST", "/api/sendSms", json_body=BODY, headers=headers))


@contextmanager
def later() -> Iterator[None]:
    """Past the time any request can still be working on a send."""
    moment = clock.now() + timedelta(minutes=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock, "now", lambda: moment)
        yield


def listed_by_twilio(mock: responses.RequestsMock) -> None:
    """Twilio's list shows the message the first request created (just now)."""
    now = clock.now().strftime("%a, %d %b %Y %H:%M:%S +0000")
    listed = [twilio_message(date_created=now)]
    mock.get(MESSAGES_URL, json={"messages": listed, "next_page_uri": None})


def test_storage_failing_after_twilio_accepted_still_answers_the_sid(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock
) -> None:
    def accept_then_cut(_: Any) -> tuple[int, dict[str, str], str]:
        proxy.cut()  # storage goes away while Twilio is answering
        return 201, {}, json.dumps(twilio_message())

    twilio_via_proxy.add_callback("POST", MESSAGES_URL, callback=accept_then_cut)
    first = post("cut-after")
    assert first.status_code == 201  # never "503 ... nothing was sent": it was sent
    assert json.loads(first.get_body())["sid"] == SID

    proxy.cut(False)  # storage is back
    [row] = ledger_rows()
    assert row.state == "pending"  # the answer was never recorded
    listed_by_twilio(twilio_via_proxy)
    with later():
        again = post("cut-after")
    assert again.status_code == 201
    assert json.loads(again.get_body())["sid"] == SID
    assert again.headers.get("Idempotent-Replayed") == "true"
    methods = [c.request.method for c in twilio_via_proxy.calls]
    assert methods == ["POST", "GET"]  # reconciled from the list, never sent twice
    [row] = ledger_rows()
    assert (row.state, row.sid) == ("sent", SID)


def test_an_unreadable_2xx_from_twilio_is_an_unknown_outcome_not_a_crash(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock
) -> None:
    twilio_via_proxy.post(MESSAGES_URL, body="<html>gateway says hi</html>", status=200)
    first = post("garbled")
    assert first.status_code == 502
    assert "outcome is unknown" in problem(first)["detail"]
    [row] = ledger_rows()
    assert row.state == "unknown"
    listed_by_twilio(twilio_via_proxy)
    again = post("garbled")
    assert again.status_code == 201
    assert [c.request.method for c in twilio_via_proxy.calls] == ["POST", "GET"]


def test_a_key_whose_send_never_reached_twilio_is_freed_once_abandoned(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock
) -> None:
    """Storage failed between the claim and Twilio, and the key could not be given back."""
    twilio_via_proxy.add_callback(
        "POST", MESSAGES_URL, callback=lambda _: (201, {}, json.dumps(twilio_message()))
    )
    # What such a failure leaves: a claimed key, a pending row, nothing at Twilio.
    row = ledger.new_row("user-1", "sms", BODY["to"], FROM_NUMBER)
    canonical = SendSmsRequest.model_validate(BODY).model_dump_json(by_alias=True)
    print_ = idempotency.fingerprint("sms", canonical)
    idempotency.claim("user-1", "stranded", print_=print_, ttl_hours=24, row=row)
    assert post("stranded").status_code == 409  # just now: it may still be in flight
    twilio_via_proxy.get(MESSAGES_URL, json={"messages": [], "next_page_uri": None})
    with later():
        freed = post("stranded")
    assert freed.status_code == 409
    assert "free again" in problem(freed)["detail"]
    sent = post("stranded")
    assert sent.status_code == 201
    assert [c.request.method for c in twilio_via_proxy.calls] == ["GET", "POST"]
