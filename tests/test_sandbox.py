"""The sandbox on its own: Twilio's REST shapes and auth, and the TwiML player verb by verb."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from sandbox import Account, Sandbox
from sandbox.outbox import Call
from tests.support.polling import eventually
from tests.support.settings import ACCOUNT_SID, AUTH_TOKEN
from tests.support.twiml_server import TwimlServer

API_KEY, API_SECRET = "SK" + "1" * 32, "key-secret"
CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    running = Sandbox(
        Account(ACCOUNT_SID, AUTH_TOKEN, API_KEY, API_SECRET), step_seconds=0.01
    ).start()
    yield running
    running.stop()


@pytest.fixture
def twiml() -> Iterator[TwimlServer]:
    server = TwimlServer()
    yield server
    server.stop()


def place(sandbox: Sandbox, url: str, to: str = "+14155550177", **extra: str) -> Call:
    response = requests.post(
        sandbox.url + CALLS,
        data={"To": to, "From": "+15005550006", "Url": url, **extra},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    call = sandbox.outbox.calls[response.json()["sid"]]
    eventually(lambda: call.status in ("completed", "busy", "no-answer"))
    return call


# --- REST --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth", [(ACCOUNT_SID, "wrong"), (API_KEY, "wrong"), ("AC" + "f" * 32, AUTH_TOKEN), None]
)
def test_wrong_credentials_are_401_20003(sandbox: Sandbox, auth: tuple[str, str] | None) -> None:
    response = requests.post(
        sandbox.url + MESSAGES,
        data={"To": "+14155550177", "From": "+15005550006", "Body": "x"},
        auth=auth,
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["code"] == 20003
    assert sandbox.outbox.messages == {}


def test_messages_have_twilios_shape_and_can_be_listed_and_fetched(sandbox: Sandbox) -> None:
    created = requests.post(
        sandbox.url + MESSAGES,
        data={"To": "+14155550177", "From": "+15005550006", "Body": "hi"},
        auth=(API_KEY, API_SECRET),
        timeout=10,
    ).json()
    assert created["sid"].startswith("SM")
    assert created["status"] == "queued"
    assert created["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{created['sid']}.json"
    assert created["date_created"].endswith("+0000")
    listed = requests.get(
        sandbox.url + MESSAGES,
        params={"To": "+14155550177"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=10,
    ).json()["messages"]
    assert [m["sid"] for m in listed] == [created["sid"]]
    other = requests.get(
        sandbox.url + MESSAGES,
        params={"To": "+14155550000"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=10,
    ).json()["messages"]
    assert other == []
    fetched = requests.get(
        sandbox.url + created["uri"].removeprefix(""), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10
    )
    assert fetched.json()["sid"] == created["sid"]


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": "+15005550006", "Body": "x"}, 21604),
        ({"To": "+14155550177", "Body": "x"}, 21603),
        ({"To": "+14155550177", "From": "+15005550006"}, 21602),
        ({"To": "+15005550001", "From": "+15005550006", "Body": "x"}, 21211),
        ({"To": "+14155550177", "From": "+15005550001", "Body": "x"}, 21212),
    ],
)
def test_twilios_errors_have_twilios_body(
    sandbox: Sandbox, form: dict[str, str], code: int
) -> None:
    response = requests.post(
        sandbox.url + MESSAGES, data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10
    )
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["status"]) == (code, 400)
    assert body["more_info"].endswith(str(code))


# --- the TwiML player --------------------------------------------------------------------


def test_every_fetch_is_signed_and_carries_the_call_fields(
    sandbox: Sandbox, twiml: TwimlServer
) -> None:
    call = place(sandbox, twiml.serve("/a", "<Response><Say>hi</Say></Response>"))
    [(_, form, signed)] = twiml.requests
    assert signed
    assert {k: v[0] for k, v in form.items()} == {
        "CallSid": call.sid,
        "AccountSid": ACCOUNT_SID,
        "From": "+15005550006",
        "To": "+14155550177",
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "ApiVersion": "2010-04-01",
    }


def test_gather_posts_the_scripted_digits_to_its_action(
    sandbox: Sandbox, twiml: TwimlServer
) -> None:
    requests.post(
        f"{sandbox.url}/sandbox/key-presses",
        json={"to": "+14155550111", "digits": ["2"]},
        timeout=10,
    )
    twiml.serve("/chosen", "<Response><Say>You chose two</Say><Hangup/></Response>")
    menu = twiml.serve(
        "/menu",
        '<Response><Gather numDigits="1" action="/chosen"><Say>Press 2</Say><Pause length="1"/>'
        "</Gather><Say>Nothing pressed</Say></Response>",
    )
    call = place(sandbox, menu, to="+14155550111")
    assert call.transcript == [
        "Say: Press 2",
        "Pause: 1 s",
        "Gather: callee pressed 2",
        "Say: You chose two",
        "Hangup",
    ]
    assert twiml.requests[1][1]["Digits"] == ["2"]


def test_gather_without_input_falls_through(sandbox: Sandbox, twiml: TwimlServer) -> None:
    call = place(
        sandbox,
        twiml.serve("/m", "<Response><Gather><Say>Press</Say></Gather><Say>Bye</Say></Response>"),
    )
    assert call.transcript == ["Say: Press", "Gather: no input", "Say: Bye"]


def test_dial_record_redirect_and_sms(sandbox: Sandbox, twiml: TwimlServer) -> None:
    twiml.serve("/after-dial", "<Response><Redirect>/record</Redirect></Response>")
    twiml.serve("/record", '<Response><Record action="/saved" maxLength="30"/></Response>')
    twiml.serve("/saved", '<Response><Sms to="+14155550123">New voicemail</Sms></Response>')
    start = twiml.serve(
        "/dial",
        '<Response><Dial action="/after-dial" callerId="+15005550006"><Number>+14155550100</Number>'
        "<Client>alice</Client></Dial></Response>",
    )
    call = place(sandbox, start)
    assert call.transcript == [
        "Dial: Number +14155550100, Client alice (caller id +15005550006)",
        "Redirect: /record",
        "Record: the callee leaves a message",
        "SMS to +14155550123: New voicemail",
    ]
    dial_result = twiml.requests[1][1]
    assert dial_result["DialCallStatus"] == ["completed"]
    recording = twiml.requests[3][1]
    media = f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE"
    assert recording["RecordingUrl"][0].startswith(media)
    [sms] = [m for m in sandbox.outbox.messages.values() if m.to == "+14155550123"]
    assert sms.body == "New voicemail"


def test_a_recordings_audio_needs_the_accounts_credentials_as_twilios_media_does(
    sandbox: Sandbox, twiml: TwimlServer
) -> None:
    twiml.serve("/saved", "<Response/>")
    place(sandbox, twiml.serve("/record", '<Response><Record action="/saved"/></Response>'))
    url = twiml.requests[-1][1]["RecordingUrl"][0]
    assert requests.get(f"{url}.mp3", timeout=10).status_code == 401
    audio = requests.get(f"{url}.mp3", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
    assert (audio.status_code, audio.headers["Content-Type"]) == (200, "audio/mpeg")
    assert audio.content[:2] == b"\xff\xfb"  # MPEG audio frames
    assert len(audio.content) > 10_000
    assert requests.delete(f"{url}.json", timeout=10).status_code == 401
    assert requests.delete(f"{url}.json", auth=(API_KEY, API_SECRET), timeout=10).status_code == 204
    assert requests.get(f"{url}.mp3", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10).status_code == 404


def test_an_app_identity_answers_or_not_as_told(sandbox: Sandbox, twiml: TwimlServer) -> None:
    twiml.serve("/after", "<Response><Hangup/></Response>")
    start = twiml.serve(
        "/ring",
        '<Response><Dial action="/after"><Client><Identity>bob</Identity>'
        '<Parameter name="callerName" value="Alice"/></Client></Dial></Response>',
    )
    answers: dict[str, Any] = {"identity": "bob", "answers": [False]}
    assert requests.post(f"{sandbox.url}/sandbox/clients", json=answers, timeout=10).ok
    first = place(sandbox, start)
    assert first.transcript[:2] == [
        "Dial: Client bob with callerName=Alice",
        "No answer from client:bob",
    ]
    assert twiml.requests[1][1]["DialCallStatus"] == ["no-answer"]
    place(sandbox, start)  # told nothing more: it answers
    assert twiml.requests[3][1]["DialCallStatus"] == ["completed"]
    legs = [c for c in sandbox.outbox.calls.values() if c.to == "client:bob"]
    assert [leg.status for leg in legs] == ["no-answer", "completed"]
    bad = requests.post(f"{sandbox.url}/sandbox/clients", json={"identity": "bob"}, timeout=10)
    assert bad.status_code == 400


def test_a_number_calls_the_account_and_the_voice_url_answers(
    sandbox: Sandbox, twiml: TwimlServer
) -> None:
    sandbox.account = replace(
        sandbox.account, voice_url=twiml.serve("/voice", "<Response><Say>Hi</Say></Response>")
    )
    answer = requests.post(
        f"{sandbox.url}/sandbox/incoming-calls", json={"from": "+14155550177"}, timeout=10
    )
    assert answer.status_code == 201
    call = sandbox.outbox.calls[answer.json()["sid"]]
    assert eventually(lambda: call.status == "completed")
    assert (call.direction, call.from_, call.transcript) == ("inbound", "+14155550177", ["Say: Hi"])
    [(path, form, signed)] = twiml.requests
    assert (path, form["Direction"], signed) == ("/voice", ["inbound"], True)


def test_reject_ends_the_call_busy(sandbox: Sandbox, twiml: TwimlServer) -> None:
    call = place(sandbox, twiml.serve("/r", '<Response><Reject reason="busy"/></Response>'))
    assert (call.status, call.transcript) == ("busy", ["Reject: busy"])


@pytest.mark.parametrize(
    ("document", "content_type", "code"),
    [
        ("<Response><Shout>hi</Shout></Response>", "text/xml", 12100),
        ("<Response><Say><Dial>+1</Dial></Say></Response>", "text/xml", 12100),
        ("<Response><Say>unclosed</Response>", "text/xml", 12100),
        ("<Reply/>", "text/xml", 12100),
        ("<Response/>", "text/html", 12300),
    ],
)
def test_twiml_twilio_would_reject_ends_the_call_with_its_code(
    sandbox: Sandbox, twiml: TwimlServer, document: str, content_type: str, code: int
) -> None:
    call = place(sandbox, twiml.serve("/bad", document, content_type))
    assert call.status == "completed"
    assert call.transcript[0].startswith(f"Application error {code}")


def test_endless_redirects_are_cut_off(sandbox: Sandbox, twiml: TwimlServer) -> None:
    loop = twiml.serve("/loop", "<Response><Redirect>/loop</Redirect></Response>")
    call = place(sandbox, loop)
    assert call.transcript[-2].startswith("Application error 11100")
    assert len(twiml.requests) == 20


def test_only_loopback_urls_are_fetched(sandbox: Sandbox) -> None:
    call = place(sandbox, "https://twiml.example.org/hello.xml")
    assert call.transcript[0].startswith("Application error 11200")


def test_status_callbacks_are_signed_and_sequenced(sandbox: Sandbox, twiml: TwimlServer) -> None:
    twiml.serve("/events", "")
    call = place(
        sandbox,
        twiml.serve("/c", "<Response><Say>hi</Say></Response>"),
        StatusCallback=f"{twiml.url}/events",
        StatusCallbackEvent="initiated",
    )

    def events_posted() -> list[dict[str, list[str]]]:
        return [form for path, form, _ in twiml.requests if path == "/events"]

    # Like Twilio, the sandbox shows the call completed before it posts the last callback.
    eventually(lambda: len(events_posted()) >= 2)
    events = events_posted()
    assert all(signed for path, _, signed in twiml.requests)
    assert [e["CallStatus"][0] for e in events] == ["initiated", "completed"]
    assert [e["SequenceNumber"][0] for e in events] == ["0", "1"]
    assert events[-1]["CallDuration"] == [str(call.duration)]


# --- a contact writes ----------------------------------------------------------------------


def test_a_contact_reply_is_posted_signed_to_the_sms_url_and_its_twiml_reply_sent(
    sandbox: Sandbox, twiml: TwimlServer
) -> None:
    twiml.documents["/sms"] = (
        "<Response><Message>Got it</Message><Message><Body>Twice</Body></Message></Response>",
        "text/xml",
    )
    sandbox.account = replace(sandbox.account, sms_url=f"{twiml.url}/sms")
    answer = requests.post(
        f"{sandbox.url}/sandbox/replies",
        json={"from": "+14155550177", "body": "hello there"},
        timeout=10,
    )
    assert answer.status_code == 201
    assert (answer.json()["answered"], answer.json()["replies"]) == (200, ["Got it", "Twice"])
    [(path, form, signed)] = twiml.requests
    assert (path, signed) == ("/sms", True)
    assert {k: v[0] for k, v in form.items() if k in ("From", "To", "Body", "SmsStatus")} == {
        "From": "+14155550177",
        "To": "+15005550006",
        "Body": "hello there",
        "SmsStatus": "received",
    }
    assert form["MessageSid"][0] == answer.json()["sid"]
    shown = requests.get(f"{sandbox.url}/sandbox/outbox.json", timeout=10).json()["messages"]
    assert [(m["direction"], m["from"], m["body"]) for m in shown] == [
        ("outbound-reply", "+15005550006", "Twice"),
        ("outbound-reply", "+15005550006", "Got it"),
        ("inbound", "+14155550177", "hello there"),
    ]


@pytest.mark.parametrize(
    "data",
    [{"from": "14155550177", "body": "x"}, {"from": "+14155550177", "body": ""}, {"body": "x"}],
)
def test_a_reply_that_twilio_could_not_carry_is_a_400(
    sandbox: Sandbox, twiml: TwimlServer, data: dict[str, str]
) -> None:
    sandbox.account = replace(sandbox.account, sms_url=f"{twiml.url}/sms")
    answer = requests.post(f"{sandbox.url}/sandbox/replies", json=data, timeout=10)
    assert answer.status_code == 400
    assert twiml.requests == []


def test_a_reply_with_no_sms_url_says_how_to_set_one(sandbox: Sandbox) -> None:
    answer = requests.post(
        f"{sandbox.url}/sandbox/replies", json={"from": "+14155550177", "body": "x"}, timeout=10
    )
    assert answer.status_code == 400
    assert "--sms-url" in answer.json()["message"]


def test_a_call_whose_twiml_fails_plays_its_fallback_url(
    sandbox: Sandbox, twiml: TwimlServer
) -> None:
    fallback = twiml.serve("/fallback", "<Response><Say>Sorry</Say></Response>")
    call = place(sandbox, f"{twiml.url}/missing#ct=3000&rc=2", FallbackUrl=fallback)
    assert call.transcript == [
        f"Application error 11200: HTTP 404 from {twiml.url}/missing#ct=3000&rc=2",
        "Say: Sorry",
    ]
    [missing, (path, form, signed)] = twiml.requests
    assert missing[0] == "/missing"  # requested without the fragment
    assert missing[2]  # and signed over what was requested
    assert (path, form["ErrorCode"], signed) == ("/fallback", ["11200"], True)
