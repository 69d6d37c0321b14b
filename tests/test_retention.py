"""Retention: the daily timer deletes expired keys, ended counter windows, and ledger, SID-index
and inbox rows older than RETENTION_DAYS; never what is still live; safe to run twice or at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import responses
from azure.functions.timer import TimerRequest

from api.core import clock
from api.core.settings import get_settings
from api.edge.app_routes import get_message, send_sms
from api.edge.ops_routes import retention
from api.edge.twilio_routes import incoming_call, incoming_sms, status
from api.services.retention import BATCH, purge
from api.stores.storage import table
from tests.support.clock import moved
from tests.support.func_requests import request, signed
from tests.support.settings import ACCOUNT_SID, MESSAGES_URL
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_message

pytestmark = pytest.mark.usefixtures("storage")


@contextmanager
def clock_moved(by: timedelta) -> Iterator[None]:
    with moved(by):
        yield


def send(key: str, to: str = "+14155551234") -> None:
    """A send, and Twilio's first status callback for it (which writes its SID index)."""
    body = {"to": to, "body": "ahoy hoy"}
    headers = {"Idempotency-Key": key}
    answer = send_sms(request("POST", "/api/sendSms", json_body=body, headers=headers))
    assert answer.status_code == 201
    sid = json.loads(answer.get_body())["sid"]
    [row] = [row for row in ledger_rows() if row.sid == sid]
    form = [("MessageSid", sid), ("MessageStatus", "sent"), ("AccountSid", ACCOUNT_SID)]
    assert status(signed("POST", f"/api/status?ref={row.ref}", form)).status_code == 204


def row_keys(name: str, prefix: str = "") -> list[str]:
    keys = sorted(e["RowKey"] for e in table(name).list_entities())
    return [k for k in keys if k.startswith(prefix)]


@pytest.fixture
def twilio_ok(twilio: responses.RequestsMock) -> responses.RequestsMock:
    twilio.assert_all_requests_are_fired = False
    sids = iter(f"SM{n:032x}" for n in range(1, 10_000))
    twilio.add_callback(
        "POST",
        MESSAGES_URL,
        callback=lambda _: (201, {}, json.dumps(twilio_message(sid=next(sids)))),
    )
    return twilio


@pytest.mark.usefixtures("twilio_ok")
def test_old_sends_go_and_recent_ones_stay() -> None:
    with clock_moved(-timedelta(days=100)):
        send("old-key", "+14155550101")
    send("new-key", "+14155550102")
    assert len(ledger_rows()) == 2
    assert len(row_keys("ledger", "sid-")) == 2

    deleted = purge()

    [kept] = ledger_rows()
    assert kept.to == "+14155550102"
    assert deleted["ledger rows"] == 1
    assert deleted["SID index rows"] == 1
    assert row_keys("ledger", "sid-") == [f"sid-{kept.sid}"]
    send("new-key", "+14155550102")  # the recent key is live: its retry replays
    assert len(ledger_rows()) == 1
    shown = get_message(request("GET", "/api/messages/x", route_params={"sid": kept.sid or ""}))
    assert shown.status_code == 200


@pytest.mark.usefixtures("twilio_ok")
def test_running_twice_or_at_once_is_safe() -> None:
    with clock_moved(-timedelta(days=120)):
        for i in range(BATCH + 30):  # more than one batch
            send(f"k{i}", f"+1415555{i:04d}")
    results: list[dict[str, int]] = []
    runs = [threading.Thread(target=lambda: results.append(purge())) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert ledger_rows() == []
    assert sum(r["ledger rows"] for r in results) == BATCH + 30  # each row deleted once
    assert purge()["ledger rows"] == 0  # and again: nothing left, nothing fails


@pytest.mark.usefixtures("twilio_ok")
def test_counter_windows_go_only_once_they_have_ended() -> None:
    send("counted")
    windows = len(row_keys("counters"))
    assert windows == 3  # the caller's day (and minute), the destination's hour, a global shard
    assert purge()["counter windows"] == 0  # today's windows are live
    with clock_moved(timedelta(hours=26)):
        assert purge()["counter windows"] == windows
    assert row_keys("counters") == []


def test_the_timer_function_purges_the_inbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_DAYS", "1")
    call = [("CallSid", "CA" + "4" * 32), ("From", "+14155550177"), ("To", "+14155550100")]
    with clock_moved(-timedelta(days=2)):
        incoming_call(signed("POST", "/api/incomingCall", call))
    incoming_call(signed("POST", "/api/incomingCall", [("CallSid", "CA" + "5" * 32), *call[1:]]))
    assert len(row_keys("inbox")) == 4  # two items, and each one's replay marker
    retention(TimerRequest(past_due=False))
    assert row_keys("inbox") == [
        next(k for k in row_keys("inbox") if k.endswith("CA" + "5" * 32) and k[0].isdigit()),
        "seen-call-CA" + "5" * 32,
    ]


@pytest.mark.usefixtures("twilio_ok")
def test_conversations_and_the_history_go_with_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_DAYS", "10")
    monkeypatch.setenv("CONVERSATION_DAYS", "3")
    reply = [("From", "+14155550101"), ("To", "+14155550100"), ("Body", "hi")]
    with clock_moved(-timedelta(days=11)):
        send("old", "+14155550101")  # a thread: message, marker, thread, list row; a route
        incoming_sms(signed("POST", "/api/incomingSms", [("MessageSid", "SM" + "7" * 32), *reply]))
    with clock_moved(-timedelta(days=4)):
        send("routed", "+14155550102")  # a route past CONVERSATION_DAYS, a thread still kept
    send("new", "+14155550103")
    assert len(row_keys("ledger", "list-")) == 3
    assert len(row_keys("routes")) == 3

    deleted = purge()

    assert deleted["history items"] == 1
    assert (deleted["conversation messages"], deleted["threads"], deleted["routes"]) == (2, 1, 2)
    assert len(row_keys("ledger", "list-")) == 2
    assert len(row_keys("conversations", "thread-")) == 2
    assert len(row_keys("conversations", "recent-")) == 2
    assert len(row_keys("conversations", "msg-")) == 2
    assert len(row_keys("routes")) == 1


def test_every_store_with_a_table_declares_what_it_keeps() -> None:
    """A new store is either in retention's list or kept for a reason the README gives."""
    import pkgutil
    from importlib import import_module

    import api
    from api.services import retention
    from api.stores import identities

    stores = {
        module
        for info in pkgutil.walk_packages(api.__path__, "api.")
        if hasattr(module := import_module(info.name), "TABLE")
    }
    assert stores == {*retention.STORES, identities}  # identities: kept, as the README says
    for store in retention.STORES:  # opt-outs: only when OPT_OUT_KEEP_DAYS says so
        assert store.expiries(clock.now(), get_settings()) or store.TABLE == "optouts"
