"""The sandbox is Twilio as Twilio's published API description has it.

twilio-python is pointed at the sandbox the way Ahoy points it (`api.base_url`) and drives every
operation on Messages and Calls; every answer the sandbox gives in these tests is validated
against the vendored description (tests/contract/) when the test ends.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from sandbox import Account, Sandbox
from sandbox.outbox import num_segments
from tests.support.polling import eventually
from tests.support.sandbox_fates import fate
from tests.support.settings import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from tests.support.twilio_contract import operation_id, template_of, violations
from tests.support.twiml_server import TwimlServer

TO = "+14155550177"
SERVICE = "MG" + "5" * 32
SAY = "<Response><Say>Hello</Say></Response>"
LONG_CALL = '<Response><Pause length="200"/><Say>never heard</Say></Response>'
API = f"/2010-04-01/Accounts/{ACCOUNT_SID}"
CALL = {"To": TO, "From": FROM_NUMBER, "Twiml": SAY}


class Recording(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """twilio-python's own HTTP client, keeping every answer for the contract check."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[str, str, int, bytes]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().request(method, url, *args, **kwargs)
        body = response.text.encode() if response.text else b""
        self.answers.append((method.upper(), urlsplit(url).path, response.status_code, body))
        return response


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    account = Account(
        ACCOUNT_SID,
        AUTH_TOKEN,
        numbers=frozenset({FROM_NUMBER, "+15005550006"}),
        service_sender=FROM_NUMBER,
    )
    running = Sandbox(account, step_seconds=0.02).start()
    yield running
    running.stop()


@pytest.fixture
def recording(sandbox: Sandbox) -> Iterator[Recording]:
    """Every answer of the test, checked against the description when it ends."""
    http = Recording()
    yield http
    wrong = {
        f"{method} {path} -> {status}: {problem}"
        for method, path, status, body in http.answers
        for problem in violations(method, path, status, body)
    }
    assert not wrong, "\n".join(sorted(wrong))


@pytest.fixture
def client(sandbox: Sandbox, recording: Recording) -> Client:
    """twilio-python as Ahoy builds it, pointed at the sandbox."""
    made = Client(
        ACCOUNT_SID,
        AUTH_TOKEN,
        account_sid=ACCOUNT_SID,
        http_client=recording,
        environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
    )
    made.api.base_url = sandbox.url
    return made


@pytest.fixture
def app() -> Iterator[TwimlServer]:
    server = TwimlServer()
    yield server
    server.stop()


def settled(fetch: Any, *statuses: str) -> Any:
    """The resource once it shows one of `statuses`."""

    def reached() -> Any:
        resource = fetch()
        return resource if resource.status in statuses else None

    found = eventually(reached)
    assert found is not None, f"never reached {statuses}"
    return found


# --- messages ------------------------------------------------------------------------------


def test_a_message_is_created_fetched_listed_redacted_and_deleted(client: Client) -> None:
    created = client.messages.create(to=TO, from_=FROM_NUMBER, body="ahoy hoy")
    assert (created.status, created.direction, created.num_segments) == (
        "queued",
        "outbound-api",
        "1",
    )
    assert created.date_sent is None
    delivered = settled(lambda: client.messages(created.sid).fetch(), "delivered")
    assert delivered.date_sent is not None
    assert delivered.date_updated >= created.date_updated
    assert [m.sid for m in client.messages.list(to=TO)] == [created.sid]
    redacted = client.messages(created.sid).update(body="")
    assert redacted.body == ""
    assert client.messages(created.sid).delete() is True
    with pytest.raises(TwilioRestException) as gone:
        client.messages(created.sid).fetch()
    assert (gone.value.status, gone.value.code) == (404, 20404)


def test_date_updated_changes_only_when_the_message_does(client: Client) -> None:
    created = client.messages.create(to=TO, from_=FROM_NUMBER, body="hi")
    settled(lambda: client.messages(created.sid).fetch(), "delivered")
    first = client.messages(created.sid).fetch().date_updated
    time.sleep(1.1)  # Twilio's dates have whole seconds
    assert client.messages(created.sid).fetch().date_updated == first


def test_a_message_still_being_sent_can_be_neither_deleted_nor_redacted(
    sandbox: Sandbox, client: Client
) -> None:
    sandbox.player.step_seconds = 1.0
    created = client.messages.create(to=TO, from_=FROM_NUMBER, body="hi")
    for attempt in (lambda: client.messages(created.sid).delete(),
                    lambda: client.messages(created.sid).update(body="")):  # fmt: skip
        with pytest.raises(TwilioRestException) as refused:
            attempt()
        assert (refused.value.status, refused.value.code) == (400, 20009)


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("x" * 160, 1),
        ("x" * 161, 2),  # 153 per part once split
        ("x" * 306, 2),
        ("x" * 307, 3),
        ("€" * 80, 1),  # GSM-7 extension: two units each
        ("€" * 81, 2),
        ("é" * 160, 1),  # in GSM-7's basic set
        ("ü" * 161, 2),
        ("ł" * 70, 1),  # not GSM-7: UCS-2, 70 then 67 per part
        ("ł" * 71, 2),
        ("😀" * 35, 1),  # two UTF-16 units each
        ("😀" * 36, 2),
    ],
)
def test_num_segments_follows_gsm_7_and_ucs_2(client: Client, body: str, segments: int) -> None:
    created = client.messages.create(to=TO, from_=FROM_NUMBER, body=body)
    assert created.num_segments == str(segments) == str(num_segments(body))


@pytest.mark.parametrize(
    ("body", "accepted"),
    [("x" * 1600, True), ("€" * 800, True), ("€" * 801, False), ("😀" * 801, False)],
)
def test_the_1600_limit_counts_as_segments_do(client: Client, body: str, accepted: bool) -> None:
    if accepted:
        assert client.messages.create(to=TO, from_=FROM_NUMBER, body=body).sid
        return
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to=TO, from_=FROM_NUMBER, body=body)
    assert (refused.value.status, refused.value.code) == (400, 21617)


def test_a_messaging_service_message_starts_accepted_and_its_callbacks_name_it(
    client: Client, app: TwimlServer
) -> None:
    callback = app.serve("/status", "")
    created = client.messages.create(
        to=TO, messaging_service_sid=SERVICE, body="hi", status_callback=callback
    )
    assert (created.status, created.from_, created.messaging_service_sid) == (
        "accepted",
        None,
        SERVICE,
    )
    delivered = settled(lambda: client.messages(created.sid).fetch(), "delivered")
    assert delivered.from_ == FROM_NUMBER  # the sender the service chose
    assert eventually(lambda: len(app.requests) == 2)
    for _, form, signed in app.requests:
        assert signed
        assert form["MessagingServiceSid"] == [SERVICE]
        assert form["From"] == [FROM_NUMBER]
    assert [form["MessageStatus"] for _, form, _ in app.requests] == [["sent"], ["delivered"]]


@pytest.mark.parametrize(
    ("status", "code"),
    [("undelivered", 30003), ("undelivered", 30005), ("failed", 30006), ("undelivered", 30007)],
)
def test_a_message_fated_to_fail_ends_so_with_its_code_in_the_callback(
    sandbox: Sandbox, client: Client, app: TwimlServer, status: str, code: int
) -> None:
    fate(sandbox, TO, "message", status, code)
    callback = app.serve("/status", "")
    created = client.messages.create(to=TO, from_=FROM_NUMBER, body="hi", status_callback=callback)
    ended = settled(lambda: client.messages(created.sid).fetch(), status)
    assert (ended.error_code, bool(ended.error_message)) == (code, True)
    assert eventually(lambda: app.requests and app.requests[-1][1]["MessageStatus"] == [status])
    assert app.requests[-1][1]["ErrorCode"] == [str(code)]
    expected = ["sent", status] if status == "undelivered" else ["failed"]
    assert [f["MessageStatus"][0] for _, f, _ in app.requests] == expected
    again = client.messages.create(to=TO, from_=FROM_NUMBER, body="next one")
    settled(lambda: client.messages(again.sid).fetch(), "delivered")  # a fate is used once


# --- lists -------------------------------------------------------------------------------


def test_lists_page_through_everything_with_the_whole_envelope(
    client: Client, sandbox: Sandbox, recording: Recording
) -> None:
    sent = [client.messages.create(to=TO, from_=FROM_NUMBER, body=f"n{i}").sid for i in range(7)]
    listed = [m.sid for m in client.messages.list(page_size=3)]
    assert listed == list(reversed(sent))  # newest first, none lost past a page
    assert [m.sid for m in client.messages.stream(page_size=2, limit=5)] == listed[:5]
    pages = [a for a in recording.answers if a[1].endswith("/Messages.json") and a[0] == "GET"]
    envelopes = [json.loads(body) for *_, body in pages]
    assert [len(e["messages"]) for e in envelopes[:3]] == [3, 3, 1]
    assert [(e["page"], e["start"], e["end"]) for e in envelopes[:3]] == [
        (0, 0, 2),
        (1, 3, 5),
        (2, 6, 6),
    ]
    assert envelopes[2]["next_page_uri"] is None
    assert envelopes[1]["previous_page_uri"] is not None
    first = requests.get(
        sandbox.url + envelopes[1]["previous_page_uri"], auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5
    )
    assert [m["sid"] for m in first.json()["messages"]] == listed[:3]


def test_messages_are_filtered_as_listmessage_says(client: Client, sandbox: Sandbox) -> None:
    other = "+14155550188"
    a = client.messages.create(to=TO, from_=FROM_NUMBER, body="a")
    b = client.messages.create(to=other, from_="+15005550006", body="b")
    for sid in (a.sid, b.sid):
        settled(lambda sid=sid: client.messages(sid).fetch(), "delivered")
    assert [m.sid for m in client.messages.list(to=other)] == [b.sid]
    assert [m.sid for m in client.messages.list(from_=FROM_NUMBER)] == [a.sid]
    today = datetime.now(UTC)
    assert {m.sid for m in client.messages.list(date_sent=today.date())} == {a.sid, b.sid}
    assert client.messages.list(date_sent_before=today - timedelta(days=1)) == []
    assert len(client.messages.list(date_sent_after=today - timedelta(minutes=5))) == 2
    assert client.messages.list(date_sent_after=today + timedelta(minutes=5)) == []
    sandbox.player.step_seconds = 1.0
    queued = client.messages.create(to=TO, from_=FROM_NUMBER, body="not sent yet")
    assert queued.sid not in {m.sid for m in client.messages.list(date_sent=today.date())}


def test_calls_are_filtered_as_listcall_says(client: Client, sandbox: Sandbox) -> None:
    dialled = client.calls.create(
        to=TO, from_=FROM_NUMBER, twiml="<Response><Dial>+14155550199</Dial></Response>"
    )
    settled(lambda: client.calls(dialled.sid).fetch(), "completed")
    fate(sandbox, "+14155550111", "call", "busy")
    busy = client.calls.create(to="+14155550111", from_=FROM_NUMBER, twiml=SAY)
    settled(lambda: client.calls(busy.sid).fetch(), "busy")
    [leg] = client.calls.list(parent_call_sid=dialled.sid)
    assert (leg.to, leg.direction, leg.parent_call_sid) == (
        "+14155550199",
        "outbound-dial",
        dialled.sid,
    )
    assert [c.sid for c in client.calls.list(status="busy")] == [busy.sid]
    assert [c.sid for c in client.calls.list(to="+14155550111")] == [busy.sid]
    assert {c.sid for c in client.calls.list(from_=FROM_NUMBER)} == {dialled.sid, busy.sid, leg.sid}
    now = datetime.now(UTC)
    started = {c.sid for c in client.calls.list(start_time_after=now - timedelta(minutes=5))}
    assert started == {dialled.sid, busy.sid, leg.sid}  # dialled, answered or not
    assert {c.sid for c in client.calls.list(end_time=now.date())} == {
        dialled.sid,
        busy.sid,
        leg.sid,
    }
    assert client.calls.list(start_time_before=now - timedelta(days=1)) == []
    assert client.calls.list(end_time_after=now + timedelta(minutes=5)) == []


# --- calls -------------------------------------------------------------------------------


def test_a_call_from_twiml_runs_and_reads_as_twilio_has_it(
    client: Client, sandbox: Sandbox
) -> None:
    created = client.calls.create(to=TO, from_=FROM_NUMBER, twiml=SAY)
    assert created.status == "queued"  # never `initiated`: a Call resource has no such status
    ended = settled(lambda: client.calls(created.sid).fetch(), "completed")
    assert ended.start_time is not None
    assert ended.end_time is not None
    assert int(ended.duration) >= 1
    assert sandbox.outbox.calls[created.sid].transcript == ["Say: Hello"]
    assert client.calls(created.sid).delete() is True


@pytest.mark.parametrize("fated", ["busy", "no-answer", "failed"])
def test_a_call_fated_to_fail_ends_so_and_its_callback_says_it(
    client: Client, sandbox: Sandbox, app: TwimlServer, fated: str
) -> None:
    fate(sandbox, TO, "call", fated)
    created = client.calls.create(
        to=TO, from_=FROM_NUMBER, twiml=SAY, status_callback=app.serve("/s", "")
    )
    ended = settled(lambda: client.calls(created.sid).fetch(), fated)
    assert ended.duration is None  # never answered
    assert ended.start_time is not None  # but dialled
    assert ended.end_time is not None
    assert eventually(lambda: app.requests and app.requests[-1][1]["CallStatus"] == [fated])


def test_status_callback_method_is_honoured(client: Client, app: TwimlServer) -> None:
    created = client.calls.create(
        to=TO,
        from_=FROM_NUMBER,
        twiml=SAY,
        status_callback=app.serve("/events", ""),
        status_callback_method="GET",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    settled(lambda: client.calls(created.sid).fetch(), "completed")
    assert eventually(lambda: len(app.requests) == 4)
    assert set(app.methods) == {"GET"}
    assert all(signed for _, _, signed in app.requests)
    assert [f["CallStatus"][0] for _, f, _ in app.requests] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]


def test_a_live_call_is_redirected_then_hung_up_and_an_ended_one_is_21220(
    client: Client, sandbox: Sandbox, app: TwimlServer
) -> None:
    created = client.calls.create(to=TO, from_=FROM_NUMBER, twiml=LONG_CALL)
    settled(lambda: client.calls(created.sid).fetch(), "in-progress")
    app.serve("/next", LONG_CALL.replace("never heard", "redirected"))
    client.calls(created.sid).update(url=f"{app.url}/next")
    assert eventually(lambda: app.requests)  # the new document was fetched
    client.calls(created.sid).update(twiml="<Response><Say>inline</Say><Hangup/></Response>")
    ended = settled(lambda: client.calls(created.sid).fetch(), "completed")
    transcript = sandbox.outbox.calls[created.sid].transcript
    assert transcript.count("Redirected by the REST API") == 2
    assert transcript[-2:] == ["Say: inline", "Hangup"]
    with pytest.raises(TwilioRestException) as late:
        client.calls(ended.sid).update(status="completed")
    assert (late.value.status, late.value.code) == (400, 21220)


def test_a_live_call_is_completed_and_a_ringing_one_canceled(
    client: Client, sandbox: Sandbox
) -> None:
    live = client.calls.create(to=TO, from_=FROM_NUMBER, twiml=LONG_CALL)
    settled(lambda: client.calls(live.sid).fetch(), "in-progress")
    client.calls(live.sid).update(status="completed")
    assert settled(lambda: client.calls(live.sid).fetch(), "completed").duration is not None
    sandbox.player.step_seconds = 2.0  # slow enough to catch it before it is answered
    queued = client.calls.create(to=TO, from_=FROM_NUMBER, twiml=SAY)
    client.calls(queued.sid).update(status="canceled")
    canceled = settled(lambda: client.calls(queued.sid).fetch(), "canceled")
    assert (canceled.start_time, canceled.duration) == (None, None)


# --- Twilio's test numbers, per channel ---------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "from_", "code"),
    [
        ("+15005550001", FROM_NUMBER, 21211),
        ("+15005550002", FROM_NUMBER, 21612),
        ("+15005550003", FROM_NUMBER, 21408),
        ("+15005550004", FROM_NUMBER, 21610),
        ("+15005550009", FROM_NUMBER, 21614),
        (TO, "+15005550001", 21212),
        (TO, "+15005550007", 21606),
        (TO, "+15005550008", 21611),
        (TO, "+14155550999", 21606),  # a number the account does not own
        ("not a number", FROM_NUMBER, 21211),
    ],
)
def test_message_test_numbers(
    client: Client, sandbox: Sandbox, to: str, from_: str, code: int
) -> None:
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to=to, from_=from_, body="hi")
    assert (refused.value.status, refused.value.code) == (400, code)
    assert sandbox.outbox.messages == {}


@pytest.mark.parametrize(
    ("to", "from_", "code"),
    [
        ("+15005550001", FROM_NUMBER, 21217),
        ("+15005550002", FROM_NUMBER, 21214),
        ("+15005550003", FROM_NUMBER, 21215),
        ("+15005550004", FROM_NUMBER, 21216),
        (TO, "+15005550001", 21212),
        (TO, "+14155550999", 21210),  # a number the account does not own
        ("not a number", FROM_NUMBER, 21217),
    ],
)
def test_call_test_numbers(
    client: Client, sandbox: Sandbox, to: str, from_: str, code: int
) -> None:
    with pytest.raises(TwilioRestException) as refused:
        client.calls.create(to=to, from_=from_, twiml=SAY)
    assert (refused.value.status, refused.value.code) == (400, code)
    assert sandbox.outbox.calls == {}


def test_valid_test_numbers_are_accepted(client: Client) -> None:
    assert (
        client.messages.create(to="+15005550006", from_="+15005550006", body="hi").status
        == "queued"
    )
    assert (
        client.calls.create(to="+15005550006", from_="+15005550006", twiml=SAY).status == "queued"
    )


# --- requests Twilio refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params", "code"),
    [
        ("GET", "/Messages.json", {"PageSize": "²"}, 20001),
        ("GET", "/Messages.json", {"PageSize": "ten"}, 20001),
        ("GET", "/Messages.json", {"PageSize": "0"}, 20001),
        ("GET", "/Messages.json", {"PageSize": "1001"}, 20007),
        ("GET", "/Messages.json", {"Page": "-1"}, 20001),
        ("GET", "/Messages.json", {"PageToken": "PAnope"}, 21481),
        ("GET", "/Messages.json", {"DateSent>": "yesterday"}, 20001),
        ("GET", "/Calls.json", {"Status": "initiated"}, 20001),
        ("GET", "/Calls.json", {"ParentCallSid": "CA123"}, 20001),
        ("GET", "/Calls.json", {"StartTime<": "2026-13-45"}, 20001),
        ("POST", "/Messages.json", {"To": TO, "MessagingServiceSid": "MGnope", "Body": "x"}, 20001),
        (
            "POST",
            "/Calls.json",
            {"To": TO, "From": FROM_NUMBER, "Twiml": SAY, "TimeLimit": "٣"},
            20001,
        ),
        (
            "POST",
            "/Calls.json",
            {"To": TO, "From": FROM_NUMBER, "Twiml": SAY, "Method": "PUT"},
            20001,
        ),
        (
            "POST",
            "/Calls.json",
            {"To": TO, "From": FROM_NUMBER, "Twiml": SAY, "StatusCallbackMethod": "x"},
            20001,
        ),
        (
            "POST",
            "/Calls.json",
            {"To": TO, "From": FROM_NUMBER, "Twiml": SAY, "StatusCallbackEvent": "hangup"},
            20001,
        ),
        ("POST", "/Calls.json", {"To": TO, "From": FROM_NUMBER}, 21205),
    ],
)
def test_malformed_requests_are_400_with_twilios_error_body(
    sandbox: Sandbox, method: str, path: str, params: dict[str, str], code: int
) -> None:
    url = sandbox.url + API + path
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    if method == "GET":
        answer = requests.get(url, params=params, auth=auth, timeout=5)
    else:
        answer = requests.post(url, data=params, auth=auth, timeout=5)
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["code"] == code
    assert not violations(method, urlsplit(url).path, 400, answer.content)
    assert sandbox.outbox.messages == {}
    assert sandbox.outbox.calls == {}


def test_a_bad_sid_is_404_and_an_unknown_operation_405(sandbox: Sandbox) -> None:
    auth, base = (ACCOUNT_SID, AUTH_TOKEN), sandbox.url + API
    assert (
        requests.get(f"{base}/Messages/SMnope.json", auth=auth, timeout=5).json()["code"] == 20404
    )
    for answer in (
        requests.delete(f"{base}/Messages.json", auth=auth, timeout=5),
        requests.put(f"{base}/Messages.json", auth=auth, timeout=5),
        requests.patch(f"{base}/Calls/CA{'0' * 32}.json", auth=auth, timeout=5),
    ):
        assert (answer.status_code, answer.json()["code"]) == (405, 20004)


def test_a_malformed_request_gets_twilios_json_error_not_an_html_page(sandbox: Sandbox) -> None:
    with socket.create_connection((sandbox.host, sandbox.server.server_port), timeout=5) as raw:
        raw.sendall(b"GARBAGE / HTTP/1.1 extra\r\n\r\n")
        answer = raw.makefile("rb").read()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["status"] == 400


def test_a_401_says_how_to_authenticate(sandbox: Sandbox) -> None:
    answer = requests.get(
        f"{sandbox.url}{API}/Messages.json", auth=(ACCOUNT_SID, "wrong"), timeout=5
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'
    assert answer.json()["code"] == 20003


def test_every_described_operation_is_exercised(recording: Recording, client: Client) -> None:
    """The contract checks above cover all ten operations on Messages and Calls."""
    message = client.messages.create(to=TO, from_=FROM_NUMBER, body="hi")
    call = client.calls.create(to=TO, from_=FROM_NUMBER, twiml=SAY)
    client.messages.list(limit=1)
    client.calls.list(limit=1)
    settled(lambda: client.messages(message.sid).fetch(), "delivered")
    settled(lambda: client.calls(call.sid).fetch(), "completed")
    client.messages(message.sid).update(body="")
    client.calls(call.sid).update()
    client.messages(message.sid).delete()
    client.calls(call.sid).delete()
    seen = {
        operation_id(template, method)
        for method, path, _, _ in recording.answers
        if (template := template_of(path)) is not None
    }
    assert seen == {
        f"{verb}{kind}"
        for kind in ("Message", "Call")
        for verb in ("Create", "List", "Fetch", "Update", "Delete")
    }
