"""Conversations: a reply reaches the user who last wrote to its sender, and no one else."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest
import responses

from api.core import clock
from api.edge.app_routes import (
    admin_inbox,
    get_conversation,
    list_conversations,
    read_conversation,
    send_sms,
)
from api.edge.twilio_routes import incoming_sms
from api.stores import conversations
from tests.support.clock import moved
from tests.support.func_requests import problem, request, signed
from tests.support.settings import MESSAGES_URL
from tests.support.twilio_api import twilio_message

CONTACT = "+14155550177"
OTHER = "+14155550188"


def write(twilio: responses.RequestsMock, n: int, caller: str, to: str = CONTACT) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(sid=f"SM{n:032x}", to=to), status=201)
    body = {"to": to, "body": f"out {n}"}
    answer = send_sms(request("POST", "/api/sendSms", json_body=body, caller=caller))
    assert answer.status_code == 201


def reply(n: int, body: str = "hi back", sender: str = CONTACT) -> str:
    form = [
        ("MessageSid", f"SM{n:032x}"),
        ("From", sender),
        ("To", "+14155550100"),
        ("Body", body),
    ]
    answer = incoming_sms(signed("POST", "/api/incomingSms", form))
    assert answer.status_code == 200
    return answer.get_body().decode()


def threads(caller: str) -> list[dict[str, Any]]:
    answer = list_conversations(request("GET", "/api/conversations", caller=caller))
    assert answer.status_code == 200
    items: list[dict[str, Any]] = json.loads(answer.get_body())["items"]
    return items


def thread(caller: str, number: str = CONTACT, query: str = "") -> func.HttpResponse:
    path = f"/api/conversations/{number}{query}"
    return get_conversation(request("GET", path, caller=caller, route_params={"number": number}))


def messages(caller: str, number: str = CONTACT) -> list[tuple[str, str]]:
    answer = thread(caller, number)
    assert answer.status_code == 200
    return [(m["direction"], m["body"]) for m in json.loads(answer.get_body())["items"]]


def inbox_bodies() -> list[str]:
    """What the admins read (the operators' route: the host checked the master key)."""
    answer = admin_inbox(request("GET", "/api/ops/inbox", caller=None))
    assert answer.status_code == 200
    return [item.get("body", "") for item in json.loads(answer.get_body())["items"]]


def test_a_reply_reaches_the_user_who_wrote_and_no_one_else(
    twilio: responses.RequestsMock,
) -> None:
    write(twilio, 1, "user-1")
    assert "<Message>" not in reply(100, "hi back")  # a conversation is not auto-answered
    assert messages("user-1") == [("in", "hi back"), ("out", "out 1")]
    [summary] = threads("user-1")
    assert (summary["number"], summary["unread"]) == (CONTACT, 1)
    assert summary["lastMessage"]["body"] == "hi back"
    assert threads("user-2") == []
    assert messages("user-2") == []
    assert inbox_bodies() == []  # the admins do not read a user's conversation


def test_the_later_writer_owns_the_conversation(twilio: responses.RequestsMock) -> None:
    write(twilio, 1, "user-1")
    write(twilio, 2, "user-2")
    reply(100, "for whom?")
    assert messages("user-2")[0] == ("in", "for whom?")
    assert ("in", "for whom?") not in messages("user-1")
    write(twilio, 3, "user-1")
    reply(101, "now you")
    assert messages("user-1")[0] == ("in", "now you")
    assert [m for m in messages("user-2") if m[0] == "in"] == [("in", "for whom?")]


def test_keywords_and_strangers_go_to_the_inbox_and_a_replay_is_kept_once(
    twilio: responses.RequestsMock,
) -> None:
    write(twilio, 1, "user-1")
    reply(100, "STOP")
    reply(101, "hello?", sender=OTHER)  # nobody wrote to this one
    for _ in range(3):
        reply(102, "once")
    assert sorted(inbox_bodies()) == ["STOP", "hello?"]
    assert messages("user-1") == [("in", "once"), ("out", "out 1")]
    assert threads("user-1")[0]["unread"] == 1


def test_a_conversation_ends_after_conversation_days(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVERSATION_DAYS", "2")
    write(twilio, 1, "user-1")
    with moved(timedelta(days=2, minutes=1)):
        reply(100, "late")
    assert inbox_bodies() == ["late"]
    assert messages("user-1") == [("out", "out 1")]


def test_reading_a_thread_clears_its_unread_count(twilio: responses.RequestsMock) -> None:
    write(twilio, 1, "user-1")
    reply(100, "one")
    reply(101, "two")
    assert threads("user-1")[0]["unread"] == 2

    def read(caller: str, number: str = CONTACT) -> func.HttpResponse:
        path = f"/api/conversations/{number}/read"
        return read_conversation(
            request("POST", path, caller=caller, route_params={"number": number})
        )

    assert read("user-1").status_code == 204
    assert threads("user-1")[0]["unread"] == 0
    assert read("user-2").status_code == 404  # not theirs
    assert problem(read("user-1", "0044 20"))["errors"][0]["field"] == "number"
    write(twilio, 2, "user-1")  # writing keeps it read
    assert threads("user-1")[0]["unread"] == 0


def test_threads_are_listed_newest_first_and_messages_page(
    twilio: responses.RequestsMock,
) -> None:
    write(twilio, 1, "user-1", CONTACT)
    write(twilio, 2, "user-1", OTHER)
    assert [t["number"] for t in threads("user-1")] == [OTHER, CONTACT]
    for n in range(5):
        reply(100 + n, f"r{n}")
    assert [t["number"] for t in threads("user-1")] == [CONTACT, OTHER]
    seen, query = [], "?pageSize=2"
    while True:
        answer = json.loads(thread("user-1", CONTACT, query).get_body())
        seen += [m["body"] for m in answer["items"]]
        if answer["next"] is None:
            break
        query = f"?pageSize=2&continuation={answer['next']}"
    assert seen == ["r4", "r3", "r2", "r1", "r0", "out 1"]


def test_routing_is_exact_under_concurrency(storage: str) -> None:
    """Eight users' sends land in any order: the latest send owns the number."""
    base = clock.now()
    claims = [(f"user-{n}", base + timedelta(milliseconds=n)) for n in range(8)] * 3
    random.shuffle(claims)
    start = threading.Barrier(len(claims))

    def claim(caller: str, at: Any) -> None:
        start.wait()
        conversations.claim(caller, CONTACT, at)

    workers = [threading.Thread(target=claim, args=c) for c in claims]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert conversations.owner_of(CONTACT, 30) == "user-7"


def test_concurrent_replies_are_all_kept_and_counted(storage: str) -> None:
    conversations.add("user-1", CONTACT, conversations.Message("SM" + "0" * 32, "out", "hi"))
    start = threading.Barrier(12)

    def add(n: int) -> None:
        start.wait()
        message = conversations.Message(f"SM{n + 1:032x}", "in", f"r{n}")
        conversations.add("user-1", CONTACT, message)

    workers = [threading.Thread(target=add, args=(n,)) for n in range(12)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    [summary] = threads("user-1")
    assert summary["unread"] == 12
    assert len(messages("user-1")) == 13
