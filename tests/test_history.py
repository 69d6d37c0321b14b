"""The caller's own history: GET /api/messages and /api/calls, against Azurite."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest
import requests
import responses

from api.core import clock
from api.edge.app_routes import list_calls, list_messages, make_call, send_sms
from api.edge.twilio_routes import status
from api.stores import ledger
from tests.support.clock import at
from tests.support.func_requests import problem, request, signed
from tests.support.settings import CALLS_URL, MESSAGES_URL
from tests.support.storage_proxy import StorageProxy
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_call, twilio_message

TO = "+14155551234"


def sid(n: int) -> str:
    return f"SM{n:032x}"


def send(
    twilio: responses.RequestsMock, n: int, *, caller: str = "user-1", key: str | None = None
) -> func.HttpResponse:
    twilio.post(MESSAGES_URL, json=twilio_message(sid=sid(n), body=f"text {n}"), status=201)
    headers = {"Idempotency-Key": key} if key else {}
    body = {"to": TO, "body": f"text {n}"}
    return send_sms(request("POST", "/api/sendSms", json_body=body, headers=headers, caller=caller))


def listed(
    path: str = "/api/messages", *, caller: str = "user-1", headers: dict[str, str] | None = None
) -> func.HttpResponse:
    handler = list_calls if path.startswith("/api/calls") else list_messages
    return handler(request("GET", path, caller=caller, headers=headers))


def page(path: str = "/api/messages", *, caller: str = "user-1") -> dict[str, Any]:
    response = listed(path, caller=caller)
    assert response.status_code == 200, response.get_body()
    body: dict[str, Any] = json.loads(response.get_body())
    return body


def callback(ref: str, n: int, message_status: str) -> None:
    form = [("MessageSid", sid(n)), ("MessageStatus", message_status)]
    assert status(signed("POST", f"/api/status?ref={ref}", form)).status_code == 204


def test_the_history_is_the_callers_own_newest_first_each_item_as_get_by_sid_shows_it(
    twilio: responses.RequestsMock,
) -> None:
    for n in range(3):
        send(twilio, n)
    send(twilio, 9, caller="user-2")
    body = page()
    assert [item["sid"] for item in body["items"]] == [sid(2), sid(1), sid(0)]
    assert body["next"] is None
    first = body["items"][0]
    assert (first["status"], first["state"], first["to"]) == ("queued", "sent", TO)
    assert [h["status"] for h in first["history"]] == ["queued"]
    assert [item["sid"] for item in page(caller="user-2")["items"]] == [sid(9)]
    assert page("/api/calls")["items"] == []  # messages are not calls


def test_pages_follow_each_other_and_a_crafted_token_reaches_no_one_else(
    twilio: responses.RequestsMock,
) -> None:
    for n in range(5):
        send(twilio, n)
    send(twilio, 7, caller="user-2")
    seen, path = [], "/api/messages?pageSize=2"
    while True:
        body = page(path)
        seen += [item["sid"] for item in body["items"]]
        if body["next"] is None:
            break
        path = f"/api/messages?pageSize=2&continuation={body['next']}"
    assert seen == [sid(n) for n in (4, 3, 2, 1, 0)]
    # A token naming user-2's partition and the very start of their history: the query still
    # reads only user-1's partition.
    theirs = ledger.caller_partition("user-2")
    token = base64.urlsafe_b64encode(
        json.dumps({"PartitionKey": theirs, "RowKey": "list-"}).encode()
    ).decode()
    crafted = page(f"/api/messages?continuation={token}")
    assert sid(7) not in [item["sid"] for item in crafted["items"]]
    assert problem(listed("/api/messages?continuation=bm9wZQ"))["errors"][0]["field"] == (
        "continuation"
    )


def test_status_and_since_filter_the_history(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = clock.now()
    send(twilio, 0)
    with at(start + timedelta(hours=2)):
        send(twilio, 1)
    [first] = [row for row in ledger_rows() if row.sid == sid(0)]
    callback(first.ref, 0, "delivered")
    assert [i["sid"] for i in page("/api/messages?status=delivered")["items"]] == [sid(0)]
    assert [i["sid"] for i in page("/api/messages?status=queued,sent")["items"]] == [sid(1)]
    since = (start + timedelta(hours=1)).isoformat()
    assert [
        i["sid"] for i in page(f"/api/messages?since={since.replace('+', '%2B')}")["items"]
    ] == [sid(1)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=delivered%2Cnope", "status"),
        ("status=ringing", "status"),  # a call's status, asked of messages
        ("status=a,b,c,d,e,f", "status"),
        ("since=yesterday", "since"),
        ("since=2026-12-01T00:00:00", "since"),  # no offset: whose midnight?
        ("pageSize=0", "pageSize"),
    ],
)
def test_a_malformed_query_is_a_422_naming_the_parameter(
    storage: str, query: str, field: str
) -> None:
    answer = problem(listed(f"/api/messages?{query}"))
    assert answer["status"] == 422
    assert [e["field"] for e in answer["errors"]] == [field]


def test_a_send_whose_answer_was_lost_is_listed_by_its_idempotency_key(
    twilio: responses.RequestsMock,
) -> None:
    twilio.post(MESSAGES_URL, body=requests.ReadTimeout("read timed out"))
    body = {"to": TO, "body": "hello?"}
    headers = {"Idempotency-Key": "order-42"}
    assert (
        send_sms(request("POST", "/api/sendSms", json_body=body, headers=headers)).status_code
        == 504
    )
    [item] = page("/api/messages?status=unknown")["items"]
    assert (item["sid"], item["state"], item["idempotencyKey"]) == (None, "unknown", "order-42")


def test_calls_are_listed_apart_from_messages(twilio: responses.RequestsMock) -> None:
    twilio.post(CALLS_URL, json=twilio_call(), status=201)
    answer = make_call(request("POST", "/api/makeCall", json_body={"to": TO, "message": "hi"}))
    assert answer.status_code == 201
    send(twilio, 0)
    assert [i["sid"] for i in page("/api/calls")["items"]] == ["CA" + "b" * 32]
    assert [i["sid"] for i in page()["items"]] == [sid(0)]


def test_an_unchanged_history_is_304_and_any_change_gives_a_new_etag(
    twilio: responses.RequestsMock,
) -> None:
    send(twilio, 0)
    first = listed()
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = listed(headers={"If-None-Match": etag})
    assert (again.status_code, again.get_body(), again.headers["ETag"]) == (304, b"", etag)
    # Another query (a page size, a filter) is another representation: never its 304.
    assert listed("/api/messages?pageSize=5", headers={"If-None-Match": etag}).status_code == 200
    [row] = ledger_rows()
    callback(row.ref, 0, "delivered")  # a status changed: the copy is stale
    changed = listed(headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert json.loads(changed.get_body())["items"][0]["status"] == "delivered"
    # Another caller's sends change nothing of this caller's.
    etag = changed.headers["ETag"]
    send(twilio, 5, caller="user-2")
    assert listed(headers={"If-None-Match": etag}).status_code == 304
    send(twilio, 6)
    assert listed(headers={"If-None-Match": etag}).status_code == 200


def test_a_304_reads_one_row_and_nothing_else(proxy: StorageProxy) -> None:
    with responses.RequestsMock() as twilio:
        twilio.add_passthru(proxy.url)
        send(twilio, 0)
    etag = listed().headers["ETag"]
    before = len(proxy.exchanges)
    assert listed(headers={"If-None-Match": f'W/"other", {etag}'}).status_code == 304
    reads = proxy.exchanges[before:]
    assert [(r.method, r.path.split("(")[-1]) for r in reads] == [
        ("GET", f"PartitionKey='{ledger.caller_partition('user-1')}',RowKey='head-sms')")
    ]
