"""Idempotency-Key: a retried send never reaches Twilio twice."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest
import requests
import responses

from api.core import clock
from api.edge.app_routes import make_call, send_sms
from api.stores import ledger
from tests.support.clock import later, moved
from tests.support.func_requests import problem, request
from tests.support.settings import CALLS_URL, FROM_NUMBER, MESSAGES_URL
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_call, twilio_error, twilio_message

TO = "+14155551234"
SMS = {"to": TO, "body": "ahoy hoy"}
SID = "SM" + "a" * 32


def post_sms(
    key: str | None, body: dict[str, Any] = SMS, caller: str = "user-1"
) -> func.HttpResponse:
    headers = {} if key is None else {"Idempotency-Key": key}
    return send_sms(request("POST", "/api/sendSms", json_body=body, headers=headers, caller=caller))


def test_a_retry_gets_the_first_answer_and_sends_nothing(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    first = post_sms("k-1")
    again = post_sms("k-1")
    assert len(twilio.calls) == 1
    assert (again.status_code, again.get_body()) == (first.status_code, first.get_body())
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert first.headers.get("Idempotent-Replayed") is None
    assert len(ledger_rows()) == 1


def test_a_stored_twilio_refusal_is_replayed_as_it_was(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_error(400, 21610), status=400)
    first = post_sms("k-2")
    again = post_sms("k-2")
    assert first.status_code == again.status_code == 422
    assert again.get_body() == first.get_body()
    assert again.mimetype == "application/problem+json"
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(twilio.calls) == 1


def test_the_same_key_with_another_body_is_422(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    post_sms("k-3")
    response = post_sms("k-3", {"to": TO, "body": "something else"})
    assert response.status_code == 422
    assert [e["field"] for e in problem(response)["errors"]] == ["Idempotency-Key"]
    assert len(twilio.calls) == 1


def test_keys_are_scoped_per_caller(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    twilio.post(MESSAGES_URL, json=twilio_message(sid="SM" + "c" * 32), status=201)
    assert post_sms("shared", caller="alice").status_code == 201
    assert post_sms("shared", caller="bob").status_code == 201
    assert len(twilio.calls) == 2


def test_a_request_still_in_flight_is_409(twilio: responses.RequestsMock) -> None:
    during: list[func.HttpResponse] = []

    def twilio_answers(_: object) -> tuple[int, dict[str, str], str]:
        during.append(post_sms("k-4"))  # the app retries while the first is with Twilio
        return 201, {}, json.dumps(twilio_message())

    twilio.add_callback("POST", MESSAGES_URL, callback=twilio_answers)
    assert post_sms("k-4").status_code == 201
    assert during[0].status_code == 409
    assert during[0].headers.get("Retry-After")
    assert len(twilio.calls) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "naïve"])
def test_malformed_keys_are_422(twilio: responses.RequestsMock, key: str) -> None:
    response = post_sms(key)
    assert response.status_code == 422
    assert len(twilio.calls) == 0


def test_keys_expire(twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDEMPOTENCY_TTL_HOURS", "1")
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    twilio.post(MESSAGES_URL, json=twilio_message(sid="SM" + "d" * 32), status=201)
    post_sms("k-5")
    with moved(timedelta(hours=1, minutes=1)):
        response = post_sms("k-5")
    assert response.status_code == 201
    assert response.headers.get("Idempotent-Replayed") is None
    assert len(twilio.calls) == 2


def test_without_a_key_a_retry_sends_again(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    post_sms(None)
    post_sms(None)
    assert len(twilio.calls) == 2


# --- answers that never arrived ---------------------------------------------------------


def lost_answer(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, body=requests.ReadTimeout("read timed out"))
    assert post_sms("lost").status_code == 504


def test_an_unknown_outcome_is_reconciled_from_twilios_list(
    twilio: responses.RequestsMock,
) -> None:
    lost_answer(twilio)
    now = clock.now().strftime("%a, %d %b %Y %H:%M:%S +0000")
    listed = [
        twilio_message(date_created=now),  # the one the lost request created
        twilio_message(sid="SM" + "e" * 32, body="another text", date_created=now),
        twilio_message(sid="SM" + "f" * 32, date_created="Mon, 01 Jan 2024 00:00:00 +0000"),
    ]
    twilio.get(MESSAGES_URL, json={"messages": listed, "next_page_uri": None})
    response = post_sms("lost")
    assert response.status_code == 201
    assert response.headers.get("Idempotent-Replayed") == "true"
    assert json.loads(response.get_body())["sid"] == SID
    assert [c.request.method for c in twilio.calls] == ["POST", "GET"]
    assert "To=%2B14155551234" in str(twilio.calls[1].request.url)
    [row] = ledger_rows()
    assert (row.state, row.sid) == ("sent", SID)
    assert post_sms("lost").get_body() == response.get_body()  # now on record: no more lists


@pytest.mark.parametrize("matches", [0, 2])
def test_without_exactly_one_match_the_retry_is_409_and_nothing_is_resent(
    twilio: responses.RequestsMock, matches: int
) -> None:
    lost_answer(twilio)
    now = clock.now().strftime("%a, %d %b %Y %H:%M:%S +0000")
    listed = [twilio_message(sid=f"SM{i:032x}", date_created=now) for i in range(matches)]
    twilio.get(MESSAGES_URL, json={"messages": listed, "next_page_uri": None})
    response = post_sms("lost")
    assert response.status_code == 409
    assert response.headers.get("Retry-After") == "30"
    assert "not known yet" in problem(response)["detail"]
    assert [c.request.method for c in twilio.calls] == ["POST", "GET"]


@pytest.mark.parametrize("status", [401, 500])
def test_a_list_twilio_refuses_during_reconciliation_is_a_problem_not_a_crash(
    twilio: responses.RequestsMock, status: int
) -> None:
    """twilio-python raises its bare root TwilioException when a list page is not a 200."""
    lost_answer(twilio)
    twilio.get(
        MESSAGES_URL, json=twilio_error(status, 20003 if status == 401 else 20500), status=status
    )
    response = post_sms("lost")
    assert response.status_code == 409
    assert "not known yet" in problem(response)["detail"]
    assert [c.request.method for c in twilio.calls] == ["POST", "GET"]


def test_a_status_callback_settles_an_unknown_outcome_too(twilio: responses.RequestsMock) -> None:
    lost_answer(twilio)
    [row] = ledger_rows()
    ledger.record_status(row.ref, sid=SID, status="sent")
    response = post_sms("lost")
    assert response.status_code == 201
    assert json.loads(response.get_body())["sid"] == SID
    assert len(twilio.calls) == 1


def test_calls_reconcile_by_to_from_and_time(twilio: responses.RequestsMock) -> None:
    twilio.post(CALLS_URL, body=requests.ReadTimeout("read timed out"))
    body = {"to": TO, "message": "hi"}
    headers = {"Idempotency-Key": "call-1"}
    assert (
        make_call(request("POST", "/api/makeCall", json_body=body, headers=headers)).status_code
        == 504
    )
    now = clock.now().strftime("%a, %d %b %Y %H:%M:%S +0000")
    twilio.get(
        CALLS_URL,
        json={"calls": [twilio_call(date_created=now)], "next_page_uri": None},
    )
    response = make_call(request("POST", "/api/makeCall", json_body=body, headers=headers))
    assert response.status_code == 201
    assert f"From={FROM_NUMBER.replace('+', '%2B')}" in str(twilio.calls[1].request.url)


# --- Twilio asking us to slow down ------------------------------------------------------


def test_429_then_success_sends_one_message_after_retry_after(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("api.stores.twilio_service.time.sleep", waits.append)
    twilio.post(
        MESSAGES_URL, json=twilio_error(429, 20429), status=429, headers={"Retry-After": "2"}
    )
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    assert post_sms("k-429").status_code == 201
    assert len(waits) == 1
    assert 1.6 <= waits[0] <= 2.4  # Retry-After, jittered
    assert len(ledger_rows()) == 1


def test_429_that_persists_is_503_and_the_key_is_free_again(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.stores.twilio_service.time.sleep", lambda _: None)
    for _ in range(3):
        twilio.post(
            MESSAGES_URL, json=twilio_error(429, 20429), status=429, headers={"Retry-After": "7"}
        )
    response = post_sms("k-busy")
    assert response.status_code == 503
    assert response.headers.get("Retry-After") == "7"
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    assert post_sms("k-busy").status_code == 201  # never sent, so the key may send now


def test_50_concurrent_duplicates_reach_twilio_once(twilio: responses.RequestsMock) -> None:
    import time

    def slow_twilio(_: object) -> tuple[int, dict[str, str], str]:
        time.sleep(0.2)
        return 201, {}, json.dumps(twilio_message())

    twilio.add_callback("POST", MESSAGES_URL, callback=slow_twilio)
    barrier = threading.Barrier(50)
    statuses: list[int] = []

    def app() -> None:
        barrier.wait()
        statuses.append(post_sms("same-key").status_code)

    threads = [threading.Thread(target=app) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(twilio.calls) == 1
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert len(ledger_rows()) == 1


# --- the send's row is the key's claim ---------------------------------------------------


def sid_of(response: func.HttpResponse) -> str:
    return str(json.loads(response.get_body())["sid"])


def test_an_expired_key_sends_anew_and_the_first_send_stays_on_record(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.edge.app_routes import get_message

    monkeypatch.setenv("IDEMPOTENCY_TTL_HOURS", "1")
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    twilio.post(MESSAGES_URL, json=twilio_message(sid="SM" + "d" * 32), status=201)
    first = post_sms("k-again")
    with moved(timedelta(hours=1, minutes=1)):
        second = post_sms("k-again")
        again = post_sms("k-again")
    assert (sid_of(first), sid_of(second)) == (SID, "SM" + "d" * 32)
    assert (sid_of(again), again.headers.get("Idempotent-Replayed")) == ("SM" + "d" * 32, "true")
    assert len(twilio.calls) == 2
    assert sorted(row.sid or "" for row in ledger_rows()) == [SID, "SM" + "d" * 32]
    for sid in (SID, "SM" + "d" * 32):
        shown = get_message(request("GET", f"/api/messages/{sid}", route_params={"sid": sid}))
        assert shown.status_code == 200


def test_keys_whose_hashes_begin_alike_are_told_apart(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference holds only the start of a key's hash; the row holds all of it."""
    from api.stores import idempotency

    monkeypatch.setattr(idempotency, "HASH_CHARS", 1)  # so that two keys share a start
    stems: dict[str, str] = {}
    for n in range(100):
        key = f"k-{n}"
        stem = idempotency.Key("user-1", key, "", 24).stem
        if stem in stems:
            one, other = stems[stem], key
            break
        stems[stem] = key
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    twilio.post(MESSAGES_URL, json=twilio_message(sid="SM" + "e" * 32), status=201)
    assert sid_of(post_sms(one)) == SID
    assert sid_of(post_sms(other)) == "SM" + "e" * 32  # another key: sent, not replayed
    assert sid_of(post_sms(one)) == SID
    assert sid_of(post_sms(other)) == "SM" + "e" * 32
    assert len(twilio.calls) == 2


# --- a process killed after Twilio accepted: the key's row left pending ------------------


def killed_after_twilio_accepted(kind: str, body: dict[str, Any], key: str) -> ledger.Row:
    """The storage state a send leaves when its process dies after Twilio accepted it and its
    status callbacks are lost: the key claimed by a pending row, no SID, no answer."""
    from api.core.models import MakeCallRequest, SendSmsRequest
    from api.stores import idempotency

    model = SendSmsRequest if kind == "sms" else MakeCallRequest
    canonical = model.model_validate(body).model_dump_json(by_alias=True)
    row = ledger.new_row(
        "user-1",
        kind,
        body["to"],
        FROM_NUMBER,
        body_hash=hashlib.sha256(body["body"].encode()).hexdigest() if kind == "sms" else None,
    )
    key_ = idempotency.Key("user-1", key, idempotency.fingerprint(kind, canonical), 24)
    idempotency.claim(key_, row)
    return row


CALL = {"to": TO, "message": "hi"}


def post_call(key: str) -> func.HttpResponse:
    headers = {"Idempotency-Key": key}
    return make_call(request("POST", "/api/makeCall", json_body=CALL, headers=headers))


def rfc2822(moment: Any) -> str:
    return str(moment.strftime("%a, %d %b %Y %H:%M:%S +0000"))


def test_two_calls_like_the_lost_one_keep_the_key_held_and_nothing_is_placed_again(
    twilio: responses.RequestsMock,
) -> None:
    row = killed_after_twilio_accepted("call", CALL, "crashed")
    at = rfc2822(row.created)
    listed = [  # the dead process's call, and an ordinary one someone else placed just after
        twilio_call(sid="CA" + "1" * 32, date_created=at),
        twilio_call(sid="CA" + "2" * 32, date_created=at),
    ]
    twilio.get(CALLS_URL, json={"calls": listed, "next_page_uri": None})
    with later():
        first = post_call("crashed")
        again = post_call("crashed")
    for answer in (first, again):
        assert answer.status_code == 409
        assert "cannot be told apart" in problem(answer)["detail"]
        assert "free again" not in problem(answer)["detail"]
    assert [c.request.method for c in twilio.calls] == ["GET", "GET"]  # never a second POST
    [kept] = ledger_rows()
    assert kept.state == "unknown"  # held, as an unknown outcome is


def test_the_match_keeps_only_api_sends_of_the_requests_lifetime(
    twilio: responses.RequestsMock,
) -> None:
    row = killed_after_twilio_accepted("call", CALL, "tight")
    at = rfc2822(row.created)
    listed = [
        twilio_call(sid="CA" + "1" * 32, date_created=at),  # the lost one
        twilio_call(sid="CA" + "3" * 32, date_created=at, direction="outbound-dial"),  # a leg
        twilio_call(sid="CA" + "4" * 32, date_created=at, direction="inbound"),
        twilio_call(sid="CA" + "5" * 32, date_created=rfc2822(row.created - timedelta(minutes=10))),
        twilio_call(sid="CA" + "6" * 32, date_created=rfc2822(row.created + timedelta(minutes=5))),
    ]
    twilio.get(CALLS_URL, json={"calls": listed, "next_page_uri": None})
    with later():
        answer = post_call("tight")
    assert answer.status_code == 201
    assert json.loads(answer.get_body())["sid"] == "CA" + "1" * 32


def test_a_templated_sms_sent_twice_keeps_the_key_held(twilio: responses.RequestsMock) -> None:
    row = killed_after_twilio_accepted("sms", SMS, "template")
    at = rfc2822(row.created)
    listed = [twilio_message(sid=f"SM{i:032x}", date_created=at) for i in range(2)]
    twilio.get(MESSAGES_URL, json={"messages": listed, "next_page_uri": None})
    with later():
        answer = post_sms("template")
    assert answer.status_code == 409
    assert "cannot be told apart" in problem(answer)["detail"]
    assert [c.request.method for c in twilio.calls] == ["GET"]


def test_a_body_twilio_changed_is_no_proof_of_nothing(twilio: responses.RequestsMock) -> None:
    row = killed_after_twilio_accepted("sms", SMS, "trial")
    trial = "Sent from your Twilio trial account - " + SMS["body"]
    listed = [twilio_message(body=trial, date_created=rfc2822(row.created))]
    twilio.get(MESSAGES_URL, json={"messages": listed, "next_page_uri": None})
    with later():
        answer = post_sms("trial")
    assert answer.status_code == 409
    assert "free again" not in problem(answer)["detail"]
    assert [c.request.method for c in twilio.calls] == ["GET"]


def test_a_list_that_fails_never_frees_an_abandoned_key(twilio: responses.RequestsMock) -> None:
    killed_after_twilio_accepted("sms", SMS, "blind")
    twilio.get(MESSAGES_URL, json=twilio_error(500, 20500), status=500)
    with later():
        answer = post_sms("blind")
        again = post_sms("blind")
    assert answer.status_code == again.status_code == 409
    assert "free again" not in problem(again)["detail"]
    assert [c.request.method for c in twilio.calls] == ["GET", "GET"]


def test_only_nothing_in_twilios_list_frees_an_abandoned_key(
    twilio: responses.RequestsMock,
) -> None:
    killed_after_twilio_accepted("sms", SMS, "nothing")
    twilio.get(MESSAGES_URL, json={"messages": [], "next_page_uri": None})
    with later():
        freed = post_sms("nothing")
    assert freed.status_code == 409
    assert "free again" in problem(freed)["detail"]
