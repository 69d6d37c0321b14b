"""Every TwiML verb of the seed, as Twimlets-compatible flows: golden TwiML and multi-step runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.core.urls import CONNECTION_OVERRIDES
from api.edge.app_routes import inbox
from api.edge.twilio_routes import flow_step, incoming_call, incoming_sms
from tests.support.func_requests import problem, request, run_twiml, signed
from tests.support.settings import MESSAGES_URL, PUBLIC_BASE_URL
from tests.support.twilio_api import RECORDING, twilio_message

DECL = '<?xml version="1.0" encoding="UTF-8"?>'
BASE = "https://ahoy.example.net"
REFUSAL = (
    f"{DECL}<Response><Say>Sorry, this call cannot be completed. Goodbye.</Say>"
    "<Hangup /></Response>"
)
A, B = "+14155551234", "+14155551235"
OPTION = f"{BASE}/api/twiml?Message%5B0%5D%3DOne"


def twiml_for(query: str, form: list[tuple[str, str]] | None = None) -> str:
    return run_twiml(signed("POST", f"/api/twiml?{query}", form or [])).get_body().decode()


def step(query: str, form: list[tuple[str, str]]) -> str:
    response = flow_step(signed("POST", f"/api/flowStep?{query}", form))
    assert response.status_code == 200
    return response.get_body().decode()


def carried(query: str) -> str:
    """How a flow's own parameters travel in its step URLs (XML-escaped), which end with
    Twilio's connection overrides."""
    return f"{query}#{CONNECTION_OVERRIDES}".replace("&", "&amp;")


# --- golden TwiML per mode ------------------------------------------------------------------


def test_message_with_pauses() -> None:
    assert twiml_for("Message[0]=Hi&Pause[0]=2&Message[1]=Bye") == (
        f'{DECL}<Response><Say>Hi</Say><Pause length="2" /><Say>Bye</Say></Response>'
    )


def test_forward() -> None:
    query = urlencode({"mode": "forward", "PhoneNumber": A, "Timeout": "30"})
    assert twiml_for(query) == (
        f'{DECL}<Response><Dial action="{BASE}/api/flowStep?step=dial-done&amp;i=0&amp;'
        f'{carried(query)}" callerId="+14155550100" timeout="30"><Number>{A}</Number>'
        "</Dial></Response>"
    )


def test_forward_only_for_allowed_callers() -> None:
    query = urlencode({"mode": "forward", "PhoneNumber": A, "AllowedCallers[0]": "+14155550199"})
    assert "<Dial" in twiml_for(query, [("From", "+14155550199")])
    assert twiml_for(query, [("From", "+14155550100")]) == (
        f"{DECL}<Response><Say>Sorry, you are not allowed to call this number. Goodbye.</Say>"
        "<Hangup /></Response>"
    )


def test_forward_caller_id_must_be_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    query = urlencode({"mode": "forward", "PhoneNumber": A, "CallerId": "+14155550111"})
    assert twiml_for(query) == REFUSAL
    monkeypatch.setenv("TWILIO_CALLER_IDS", "+14155550111")
    from tests.support.settings import reset_caches

    reset_caches()
    assert 'callerId="+14155550111"' in twiml_for(query)


def test_simulring_whispers_the_message() -> None:
    query = urlencode(
        {"mode": "simulring", "PhoneNumbers[0]": A, "PhoneNumbers[1]": B, "Message": "For you"}
    )
    whisper = f"{BASE}/api/twiml?Message%5B0%5D=For+you#{CONNECTION_OVERRIDES}".replace(
        "&", "&amp;"
    )
    assert twiml_for(query) == (
        f'{DECL}<Response><Dial action="{BASE}/api/flowStep?step=dial-done&amp;i=0&amp;'
        f'{carried(query)}" callerId="+14155550100" timeout="20">'
        f'<Number url="{whisper}">{A}</Number><Number url="{whisper}">{B}</Number>'
        "</Dial></Response>"
    )


def test_findme_tries_one_number_at_a_time_screening_for_voicemail() -> None:
    query = urlencode({"mode": "findme", "PhoneNumbers[0]": A, "PhoneNumbers[1]": B})
    screen = f"{BASE}/api/flowStep?step=findme-screen&amp;{carried(query)}"
    first = twiml_for(query)
    assert first == (
        f'{DECL}<Response><Dial action="{BASE}/api/flowStep?step=findme-next&amp;i=0&amp;'
        f'{carried(query)}" callerId="+14155550100" timeout="20">'
        f'<Number url="{screen}">{A}</Number></Dial></Response>'
    )
    # Whoever answers must press a key: a voicemail box never does.
    assert step(f"step=findme-screen&{query}", []) == (
        f'{DECL}<Response><Gather action="{BASE}/api/flowStep?step=findme-accept&amp;'
        f'{carried(query)}" numDigits="1"><Say>You have a call. Press any key to accept it.'
        "</Say></Gather><Hangup /></Response>"
    )
    assert step(f"step=findme-accept&{query}", [("Digits", "5")]) == f"{DECL}<Response />"
    # No answer (or no key): the next number; after the last, the FailUrl or a hangup.
    second = step(f"step=findme-next&i=0&{query}", [("DialCallStatus", "no-answer")])
    assert f">{B}</Number>" in second
    assert "i=1" in second
    assert step(f"step=findme-next&i=1&{query}", [("DialCallStatus", "busy")]) == (
        f"{DECL}<Response><Hangup /></Response>"
    )
    assert step(f"step=findme-next&i=0&{query}", [("DialCallStatus", "completed")]) == (
        f"{DECL}<Response><Hangup /></Response>"
    )


def test_a_failed_dial_goes_to_the_fail_url() -> None:
    query = urlencode({"mode": "forward", "PhoneNumber": A, "FailUrl": OPTION})
    assert step(f"step=dial-done&i=0&{query}", [("DialCallStatus", "no-answer")]) == (
        f"{DECL}<Response><Redirect>{OPTION}</Redirect></Response>"
    )


def test_menu_digit_to_option_and_repeats_at_most_three_times() -> None:
    query = urlencode({"mode": "menu", "Message": "Press 1", "Options[1]": OPTION})
    menu = twiml_for(query)
    assert menu == (
        f'{DECL}<Response><Gather action="{BASE}/api/flowStep?step=menu-choice&amp;attempt=1'
        f'&amp;{carried(query)}" numDigits="1"><Say>Press 1</Say></Gather>'
        f"<Redirect>{BASE}/api/flowStep?step=menu-again&amp;attempt=2&amp;{carried(query)}"
        "</Redirect></Response>"
    )
    assert step(f"step=menu-choice&attempt=1&{query}", [("Digits", "1")]) == (
        f"{DECL}<Response><Redirect>{OPTION}</Redirect></Response>"
    )
    again = step(f"step=menu-choice&attempt=1&{query}", [("Digits", "9")])
    assert "attempt=2" in again
    assert "<Gather" in again
    last = step(f"step=menu-again&attempt=3&{query}", [])
    assert last.endswith("<Say>Goodbye.</Say><Hangup /></Response>")
    assert step(f"step=menu-choice&attempt=3&{query}", [("Digits", "9")]) == (
        f"{DECL}<Response><Say>Goodbye.</Say><Hangup /></Response>"
    )


def test_voicemail_records_with_transcription() -> None:
    query = urlencode({"mode": "voicemail", "Message": "Leave it", "Transcribe": "true"})
    assert twiml_for(query) == (
        f'{DECL}<Response><Say>Leave it</Say><Record action="{BASE}/api/flowStep?'
        f'step=voicemail-saved&amp;{carried(query)}" maxLength="120" playBeep="true" '
        f'transcribe="true" transcribeCallback="{BASE}/api/flowStep?step=voicemail-transcribed'
        f'&amp;{carried(query)}" /><Say>No message was recorded. Goodbye.</Say><Hangup />'
        "</Response>"
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("mode=hangup", "<Response><Hangup /></Response>"),
        ("mode=reject&Reason=busy", '<Response><Reject reason="busy" /></Response>'),
        ("mode=reject", '<Response><Reject reason="rejected" /></Response>'),
        ("mode=pause&Length=3", '<Response><Pause length="3" /></Response>'),
    ],
)
def test_hangup_reject_pause(query: str, expected: str) -> None:
    assert twiml_for(query) == DECL + expected


# --- refusals at render time ---------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        urlencode({"mode": "forward", "PhoneNumber": "+19005550100"}),  # premium rate
        urlencode({"mode": "forward", "PhoneNumber": "sip:bob@example.org"}),
        urlencode({"mode": "simulring", "PhoneNumbers[0]": A, "PhoneNumbers[1]": "+447400123456"}),
        urlencode({"mode": "findme", "PhoneNumbers[0]": "+881612345678"}),
        urlencode({"mode": "simulring", **{f"PhoneNumbers[{i}]": A for i in range(6)}}),
        urlencode({"mode": "forward", "PhoneNumber": A, "Timeout": "4"}),
        urlencode({"mode": "forward", "PhoneNumber": A, "Timeout": "61"}),
        urlencode({"mode": "menu", "Options[12]": OPTION}),
        urlencode({"mode": "menu", "Options[1]": "https://evil.example/twiml"}),
        urlencode({"mode": "menu", "Options[1]": f"{BASE}/api/status?ref=x"}),
        urlencode({"mode": "voicemail", "NotifyNumber": "+19005550100"}),
        urlencode({"mode": "voicemail", "Transcribe": "maybe"}),
        urlencode({"mode": "reject", "Reason": "angry"}),
        urlencode({"mode": "echo", "Twiml": "<Response><Dial>+19005550100</Dial></Response>"}),
        "Loop=0&Message[0]=hi",
    ],
)
def test_refused_or_invalid_flows_apologise_and_never_dial(query: str) -> None:
    assert twiml_for(query) == REFUSAL


def test_a_refused_fail_url_apologises() -> None:
    query = urlencode({"mode": "forward", "PhoneNumber": A, "FailUrl": "https://evil.example/x"})
    assert step(f"step=dial-done&i=0&{query}", [("DialCallStatus", "failed")]) == REFUSAL


def test_flow_steps_need_twilios_signature() -> None:
    req = request("POST", "/api/flowStep?step=menu-choice&mode=menu", caller=None)
    assert flow_step(req).status_code == 403


numbers = st.sampled_from(
    [
        A,
        B,
        "+19005550100",
        "+447400123456",
        "+881612345678",
        "+15005550006",
        "+18005550100",
        "not-a-number",
        "",
        "+1415555123",
        "client:alice",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    mode=st.sampled_from(["forward", "simulring", "findme", "menu", "voicemail", "message"]),
    phone=numbers,
    many=st.lists(numbers, max_size=6),
    timeout=st.sampled_from(["", "4", "5", "30", "60", "61", "x"]),
    text=st.text(max_size=40),
)
def test_any_parameters_give_well_formed_twiml_that_never_dials_a_refused_number(
    mode: str, phone: str, many: list[str], timeout: str, text: str
) -> None:
    params = {"mode": mode, "PhoneNumber": phone, "Message": text, "NotifyNumber": phone}
    params.update({f"PhoneNumbers[{i}]": n for i, n in enumerate(many)})
    if timeout:
        params["Timeout"] = timeout
    xml = twiml_for(urlencode(params))
    root = ET.fromstring(xml.encode())  # noqa: S314  # our own output
    dialled = [n.text for n in root.iter("Number")]
    assert set(dialled) <= {A, B}


# --- voicemail, inbound calls and SMS, the inbox -------------------------------------------


def admin_inbox(page_size: int = 50, continuation: str | None = None) -> dict[str, Any]:
    import base64

    import azure.functions as func

    principal = {"role_typ": "roles", "claims": [{"typ": "roles", "val": "admin"}]}
    headers = {
        "X-MS-CLIENT-PRINCIPAL-ID": "owner",
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
    }
    params = {"pageSize": str(page_size)}
    if continuation:
        params["continuation"] = continuation
    req = func.HttpRequest(
        "GET", "http://127.0.0.1:7071/api/inbox", headers=headers, params=params, body=b""
    )
    response = inbox(req)
    assert response.status_code == 200
    result: dict[str, Any] = json.loads(response.get_body())
    return result


def test_a_voicemail_is_kept_and_the_owner_is_texted(twilio: responses.RequestsMock) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    query = urlencode({"mode": "voicemail", "NotifyNumber": "+14155550123", "Transcribe": "true"})
    assert step(f"step=voicemail-saved&{query}", RECORDING).endswith(
        "<Say>Thank you. Goodbye.</Say><Hangup /></Response>"
    )
    from urllib.parse import parse_qs

    sms = parse_qs(str(twilio.calls[0].request.body))
    assert sms["To"] == ["+14155550123"]
    assert sms["From"] == ["+14155550100"]
    # Ahoy's signed link, never Twilio's media URL (which needs the account's credentials)
    [body] = sms["Body"]
    link = f"{PUBLIC_BASE_URL}/api/recordings/RE{'2' * 32}/audio?expires="
    assert body.startswith(f"New voicemail from +14155550177: {link}")
    assert RECORDING[4][1] not in body
    transcription = [("RecordingSid", "RE" + "2" * 32), ("TranscriptionText", "Call me back")]
    assert step(f"step=voicemail-transcribed&{query}", transcription) == f"{DECL}<Response />"
    [item] = admin_inbox()["items"]
    assert item["kind"] == "voicemail"
    assert item["recordingUrl"] == f"{PUBLIC_BASE_URL}/api/recordings/RE{'2' * 32}"
    assert item["transcription"] == "Call me back"


def test_a_notification_counts_against_the_global_cap(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLOBAL_DAILY_CAP", "1")
    twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
    query = urlencode({"mode": "voicemail", "NotifyNumber": "+14155550123"})
    step(f"step=voicemail-saved&{query}", RECORDING)
    step(
        f"step=voicemail-saved&{query}",
        [
            *RECORDING[:3],
            ("RecordingSid", "RE" + "3" * 32),
            ("RecordingUrl", "https://api.twilio.com/r/2"),
        ],
    )
    assert len(twilio.calls) == 1  # the second voicemail is kept, but not texted
    assert len(admin_inbox()["items"]) == 2


@pytest.mark.usefixtures("storage")
def test_an_incoming_call_is_recorded_and_answered_with_the_configured_flow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call = [("CallSid", "CA" + "4" * 32), ("From", "+14155550177"), ("To", "+14155550100")]
    default = incoming_call(signed("POST", "/api/incomingCall", call)).get_body().decode()
    assert "<Record " in default
    monkeypatch.setenv("INCOMING_CALL_FLOW", f"mode=forward&PhoneNumber={quote(A)}")
    from tests.support.settings import reset_caches

    reset_caches()
    another = [("CallSid", "CA" + "5" * 32), *call[1:]]  # the same CallSid would be a replay
    forwarded = incoming_call(signed("POST", "/api/incomingCall", another)).get_body().decode()
    assert f"<Number>{A}</Number>" in forwarded
    items = admin_inbox()["items"]
    assert [i["kind"] for i in items] == ["call", "call"]


@pytest.mark.parametrize(("body", "replied"), [("hello", True), ("STOP", False), ("help", False)])
@pytest.mark.usefixtures("storage")
def test_an_incoming_sms_is_stored_and_auto_replied(
    monkeypatch: pytest.MonkeyPatch, body: str, replied: bool
) -> None:
    monkeypatch.setenv("INCOMING_SMS_REPLY", "Thanks, we got it.")
    form = [
        ("MessageSid", "SM" + "5" * 32),
        ("From", "+14155550177"),
        ("To", "+14155550100"),
        ("Body", body),
    ]
    xml = incoming_sms(signed("POST", "/api/incomingSms", form)).get_body().decode()
    assert ("<Message>Thanks, we got it.</Message>" in xml) == replied
    [item] = admin_inbox()["items"]
    assert (item["kind"], item["body"]) == ("sms", body)


@pytest.mark.usefixtures("storage")
def test_no_reply_when_none_is_configured() -> None:
    form = [("MessageSid", "SM" + "6" * 32), ("From", "+14155550177"), ("Body", "hi")]
    assert incoming_sms(signed("POST", "/api/incomingSms", form)).get_body().decode() == (
        f"{DECL}<Response />"
    )


@pytest.mark.usefixtures("storage")
def test_the_inbox_is_newest_first_paged_and_admin_only() -> None:
    for n in range(3):
        form = [("MessageSid", f"SM{n:032x}"), ("From", "+14155550177"), ("Body", f"m{n}")]
        incoming_sms(signed("POST", "/api/incomingSms", form))
    first = admin_inbox(page_size=2)
    assert [i["body"] for i in first["items"]] == ["m2", "m1"]
    rest = admin_inbox(page_size=2, continuation=str(first["next"]))
    assert [i["body"] for i in rest["items"]] == ["m0"]
    assert rest["next"] is None
    not_admin = inbox(request("GET", "/api/inbox", caller="someone"))
    assert not_admin.status_code == 403
    assert problem(not_admin)["title"] == "Forbidden"
