"""Storage failing around a send, cut at chosen moments by a proxy in front of a running
Azurite (killing Azurite would lose its last writes): the caller always hears the truth, and a
retry with the same key settles that one send, never a second."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError

from api.core import clock
from api.core.models import SendSmsRequest
from api.edge.app_routes import send_sms
from api.stores import idempotency, ledger
from tests.support.azurite import Azurite
from tests.support.clock import later
from tests.support.func_requests import problem, request
from tests.support.polling import eventually
from tests.support.settings import FROM_NUMBER, MESSAGES_URL, reset_caches
from tests.support.storage_proxy import StorageProxy
from tests.support.tables import background_retries_running, ledger_rows
from tests.support.twilio_api import twilio_message

BODY = {"to": "+14155551234", "body": "ahoy hoy"}
SID = "SM" + "a" * 32


@pytest.fixture
def twilio_via_proxy(proxy: StorageProxy) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(proxy.url)
        yield mock


def post(key: str) -> func.HttpResponse:
    headers = {"Idempotency-Key": key}
    return send_sms(request("POST", "/api/sendSms", json_body=BODY, headers=headers))


def retried_while_in_flight(key: str) -> func.HttpResponse | None:
    """Retry as a client would while the key answers 409 (within a few seconds)."""

    def attempt() -> func.HttpResponse | None:
        answer = post(key)
        return None if answer.status_code == 409 else answer

    return eventually(attempt, timeout=5)  # type: ignore[no-any-return]


def claims_the_key(method: str, body: bytes) -> bool:
    """The request that inserts the send's ledger row: with a key, the key's claim."""
    return method == "POST" and b'"send-' in body


def sent_to_twilio(mock: responses.RequestsMock) -> list[str]:
    """The methods of the requests that reached Twilio (not the storage passed through)."""
    return [str(c.request.method) for c in mock.calls if MESSAGES_URL in (c.request.url or "")]


def twilio_accepts(mock: responses.RequestsMock) -> None:
    mock.add_callback(
        "POST", MESSAGES_URL, callback=lambda _: (201, {}, json.dumps(twilio_message()))
    )


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
    idempotency.claim(idempotency.Key("user-1", "stranded", print_, 24), row)
    assert post("stranded").status_code == 409  # just now: it may still be in flight
    twilio_via_proxy.get(MESSAGES_URL, json={"messages": [], "next_page_uri": None})
    with later():
        freed = post("stranded")
    assert freed.status_code == 409
    assert "free again" in problem(freed)["detail"]
    sent = post("stranded")
    assert sent.status_code == 201
    assert [c.request.method for c in twilio_via_proxy.calls] == ["GET", "POST"]


def test_a_claim_that_landed_but_whose_answer_was_lost_is_freed_once_storage_is_back(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock
) -> None:
    twilio_accepts(twilio_via_proxy)
    lost: list[str] = []

    def lose_the_claims_answer(method: str, path: str, body: bytes) -> str | None:
        if lost:
            return "drop"  # and storage stays down
        if claims_the_key(method, body):
            lost.append(path)
            return "lose"  # the claim and the row land; the answer never comes back
        return None

    proxy.rule = lose_the_claims_answer
    first = post("lost-claim")
    assert first.status_code == 503
    assert "nothing was sent" in problem(first)["detail"]
    assert lost

    proxy.rule = None  # storage is back
    settled = retried_while_in_flight("lost-claim")
    assert settled is not None, "the key stayed held after storage came back"
    assert settled.status_code == 201
    assert sent_to_twilio(twilio_via_proxy) == ["POST"]
    assert [(row.state, row.sid) for row in ledger_rows()] == [("sent", SID)]


def test_storage_failing_between_the_claim_and_twilio_frees_the_key_once_it_is_back(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock
) -> None:
    twilio_accepts(twilio_via_proxy)
    claimed: list[str] = []

    def fail_after_the_claim(method: str, path: str, body: bytes) -> str | None:
        if claimed:
            return "drop"
        if claims_the_key(method, body):
            claimed.append(path)
            return None  # the claim lands and is answered
        return "drop" if b"counters" in body or "counters" in path else None

    proxy.rule = fail_after_the_claim
    first = post("then-down")
    assert first.status_code == 503
    assert sent_to_twilio(twilio_via_proxy) == []
    assert claimed

    proxy.rule = None
    settled = retried_while_in_flight("then-down")
    assert settled is not None, "the key stayed held after storage came back"
    assert settled.status_code == 201
    assert sent_to_twilio(twilio_via_proxy) == ["POST"]
    assert [row.state for row in ledger_rows()] == ["sent"]  # the first attempt left no row


def test_twilio_unreachable_while_storage_fails_is_told_and_the_key_freed_once_it_is_back(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock
) -> None:
    refused = MaxRetryError(None, "/", NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    attempts: list[int] = []

    def unreachable_then_accepting(_: Any) -> tuple[int, dict[str, str], str]:
        attempts.append(1)
        if len(attempts) == 1:
            proxy.cut()  # and storage fails at the same moment
            raise requests.ConnectionError(refused)
        return 201, {}, json.dumps(twilio_message())

    twilio_via_proxy.add_callback("POST", MESSAGES_URL, callback=unreachable_then_accepting)
    first = post("both-down")
    assert first.status_code == 502  # Twilio's error, not storage's: nothing was sent
    assert "nothing was sent" in problem(first)["detail"]

    proxy.cut(False)
    settled = retried_while_in_flight("both-down")
    assert settled is not None, "the key stayed held after storage came back"
    assert settled.status_code == 201
    assert len(attempts) == 2
    assert sorted(row.state for row in ledger_rows()) == ["failed", "sent"]


def test_storage_retries_and_requests_log_no_url_table_key_or_number(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    """azure-core retries each failed storage request (and urllib3 under it logs request
    lines): with everything at DEBUG, no record holds a storage path, a key or a number."""
    caplog.set_level(logging.DEBUG)
    twilio_accepts(twilio_via_proxy)
    proxy.cut()
    assert post("logged").status_code == 503
    assert proxy.dropped >= 3  # the SDK retried
    proxy.cut(False)
    assert post("logged-again").status_code == 201
    logged = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    assert "storage unreachable" in logged  # Ahoy's own line, with no detail
    for secret in ("/devstoreaccount1", "$batch", "PartitionKey", "14155551234", "ahoy hoy"):
        assert secret not in logged


def test_a_claim_the_sdk_sent_again_after_its_answer_was_lost_is_recognised_as_ours(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock
) -> None:
    """The transaction landed but was answered 503, and azure-core sent it again: the retry's
    409 is the request's own claim, not an earlier request's."""
    twilio_accepts(twilio_via_proxy)
    lost: list[str] = []

    def busy_once(method: str, path: str, body: bytes) -> str | None:
        if claims_the_key(method, body) and not lost:
            lost.append(path)
            return "busy-after"
        return None

    proxy.rule = busy_once
    first = post("retried-by-sdk")
    assert lost
    assert first.status_code == 201  # not "409 still in flight" against itself
    assert sent_to_twilio(twilio_via_proxy) == ["POST"]
    assert [(row.state, row.sid) for row in ledger_rows()] == [("sent", SID)]
    again = post("retried-by-sdk")
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_background_retries_stop_once_the_process_uses_other_tables(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a failed send still holds is retried in the background against its own tables,
    and only while the process uses them (new settings: a restart in Azure)."""
    proxy.cut()
    assert post("moving").status_code == 503
    assert background_retries_running(), "nothing was left to retry"
    monkeypatch.setenv("AHOY_TABLE_PREFIX", "elsewhere")
    reset_caches()
    assert eventually(lambda: not background_retries_running(), timeout=5)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_a_proxy_set_in_the_environment_carries_the_storage_requests(
    storage: str, azurite: Azurite, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """The storage client reads proxy settings from the environment only when one is set (it
    would otherwise look on every request): set, it is honoured."""
    forward = StorageProxy(f"http://127.0.0.1:{azurite.port}", delay=0).start()
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as twilio:
            twilio.add_passthru(f"http://127.0.0.1:{azurite.port}")
            twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
            assert post("direct").status_code == 201
            assert forward.exchanges == []

            for name in ("NO_PROXY", "no_proxy"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv(variable, forward.url)
            reset_caches()
            assert post("proxied").status_code == 201
        assert any(e.method == "POST" for e in forward.exchanges)
    finally:
        forward.stop()


def test_an_outage_under_load_keeps_one_background_worker_and_frees_every_key(
    proxy: StorageProxy, twilio_via_proxy: responses.RequestsMock
) -> None:
    import threading

    from api.stores.storage import KEEP_TRYING_THREAD

    twilio_accepts(twilio_via_proxy)
    keys = [f"outage-{i}" for i in range(30)]
    claimed: set[str] = set()

    def claims_land_then_storage_fails(method: str, path: str, body: bytes) -> str | None:
        if claims_the_key(method, body) and len(claimed) < len(keys):
            claimed.add(path + str(len(claimed)))
            return None  # each claim lands; what follows it fails
        return "drop"

    proxy.rule = claims_land_then_storage_fails
    assert {post(key).status_code for key in keys} == {503}
    workers = [t for t in threading.enumerate() if t.name == KEEP_TRYING_THREAD]
    assert len(workers) == 1  # one worker for 30 sends' releases, not a thread each
    proxy.rule = None  # storage is back: every key is let go, none was sent
    assert eventually(lambda: not background_retries_running(), timeout=10)
    assert sent_to_twilio(twilio_via_proxy) == []
    assert ledger_rows() == []
    assert post(keys[0]).status_code == 201
