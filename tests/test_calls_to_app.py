"""Calls that reach the app: inbound calls ring the user they are for, app users call each
other by user id, and recordings reach their owner through Ahoy only (Azurite, Twilio mocked)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit
from xml.etree import ElementTree as ET

import azure.functions as func
import pytest
import responses

from api.core.urls import CONNECTION_OVERRIDES
from api.edge.app_routes import (
    delete_recording,
    get_conversation,
    get_recording,
    make_call,
    recording_audio,
    recording_link,
    send_sms,
    token,
)
from api.edge.ops_routes import pin_line, unpin_line
from api.edge.twilio_routes import incoming_call, voice
from api.services import media
from api.services.retention import purge
from api.stores import recordings
from api.stores.identities import identity_for
from tests.support.clock import moved
from tests.support.func_requests import problem, request, signed
from tests.support.settings import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    CALLS_URL,
    FROM_NUMBER,
    MESSAGES_URL,
    PUBLIC_BASE_URL,
    TWIML_APP_SID,
)
from tests.support.twilio_api import twilio_call, twilio_message

CONTACT = "+14155550177"
STRANGER = "+14155550199"
RECORDING_SID = "RE" + "4" * 32
TWILIO = "https://api.twilio.com/2010-04-01"
MEDIA_URL = f"{TWILIO}/Accounts/{ACCOUNT_SID}/Recordings/{RECORDING_SID}.mp3"
RECORDING_URL = f"{TWILIO}/Accounts/{ACCOUNT_SID}/Recordings/{RECORDING_SID}.json"
MP3 = b"\xff\xfb\x90\x64" + b"\x00" * 413

pytestmark = pytest.mark.usefixtures("storage")


@pytest.fixture(autouse=True)
def voice_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    monkeypatch.setenv("TWILIO_TWIML_APP_SID", TWIML_APP_SID)


def take_token(caller: str, name: str | None = None) -> None:
    """The caller's app takes a Voice SDK token (as a JWT user with a `name` claim would)."""
    from api.edge import auth

    real = auth.authenticate

    def with_name(req: func.HttpRequest) -> auth.Caller:
        return auth.Caller(real(req).id, name=name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("api.edge.app_routes.authenticate", with_name)
        assert token(request("GET", "/api/token", caller=caller)).status_code == 200


def twiml(response: func.HttpResponse) -> ET.Element:
    assert response.status_code == 200, response.get_body()
    return ET.fromstring(response.get_body())  # noqa: S314  # Ahoy's own answer


def call_in(
    sender: str = CONTACT, line: str = FROM_NUMBER, query: str = "", **form: str
) -> ET.Element:
    fields = [("CallSid", "CA" + "9" * 32), ("From", sender), ("To", line), *form.items()]
    return twiml(incoming_call(signed("POST", f"/api/incomingCall{query}", fields)))


def text_to(twilio: responses.RequestsMock, caller: str, to: str = CONTACT) -> None:
    twilio.post(MESSAGES_URL, json=twilio_message(to=to), status=201)
    body = {"to": to, "body": "call me"}
    assert (
        send_sms(request("POST", "/api/sendSms", json_body=body, caller=caller)).status_code == 201
    )


def next_step(element: ET.Element) -> str:
    """The path and query of a Dial's or Record's action, as Twilio would request it."""
    action = element.get("action", "")
    assert action.startswith(f"{PUBLIC_BASE_URL}/api/incomingCall?")
    assert action.endswith(f"#{CONNECTION_OVERRIDES}")  # never sent: Twilio reads it
    return action.split("#")[0].removeprefix(PUBLIC_BASE_URL).removeprefix("/api/incomingCall")


def thread(caller: str, number: str = CONTACT) -> list[dict[str, Any]]:
    answer = get_conversation(
        request(
            "GET", f"/api/conversations/{number}", caller=caller, route_params={"number": number}
        )
    )
    items: list[dict[str, Any]] = json.loads(answer.get_body())["items"]
    return items


# --- inbound calls -------------------------------------------------------------------------


def test_a_call_from_someone_a_user_texted_rings_that_user_then_takes_a_voicemail(
    twilio: responses.RequestsMock,
) -> None:
    text_to(twilio, "alice")
    dial = call_in().find("Dial")
    assert dial is not None
    assert dial.get("timeout") == "20"
    client = dial.find("Client")
    assert client is not None
    assert client.findtext("Identity") == identity_for("alice")
    assert [(p.get("name"), p.get("value")) for p in client.iter("Parameter")] == [
        ("callerName", CONTACT)
    ]
    # Nobody answered: a voicemail, kept in alice's conversation with the caller.
    after = next_step(dial)
    record = call_in(query=after, DialCallStatus="no-answer").find("Record")
    assert record is not None
    assert record.get("maxLength") == "120"
    said = call_in(
        query=next_step(record),
        RecordingSid=RECORDING_SID,
        RecordingDuration="7",
        RecordingUrl=MEDIA_URL.removesuffix(".mp3"),
    )
    assert said.findtext("Say") == "Thank you. Goodbye."
    [voicemail, sent] = thread("alice")
    assert (voicemail["direction"], voicemail["body"], voicemail["recordingSid"]) == (
        "in",
        "Voicemail (7 s)",
        RECORDING_SID,
    )
    assert sent["direction"] == "out"
    assert recordings.owner_of(RECORDING_SID) == "alice"
    assert thread("bob") == []


def test_an_answered_ring_hangs_up_and_a_tampered_step_rings_no_one(
    twilio: responses.RequestsMock,
) -> None:
    text_to(twilio, "alice")
    after = next_step(call_in().find("Dial"))  # type: ignore[arg-type]
    assert call_in(query=after, DialCallStatus="completed").find("Hangup") is not None
    params = dict(parse_qsl(after.removeprefix("?")))
    forged = f"?step=voicemail&user={params['user'][:-4]}AAAA"
    answered = call_in(query=forged, RecordingSid=RECORDING_SID)
    assert answered.find("Hangup") is not None
    assert thread("alice")[0]["direction"] == "out"  # no voicemail kept for anyone


def test_a_call_from_a_stranger_follows_the_incoming_call_flow() -> None:
    answered = call_in(STRANGER)
    assert answered.find("Dial") is None
    assert answered.find("Record") is not None  # the default flow: voicemail to the inbox


def test_a_line_pinned_to_a_user_rings_them_whoever_calls(
    twilio: responses.RequestsMock,
) -> None:
    line = "+14155550111"

    def pin(method: str, body: Any = None) -> func.HttpResponse:
        handler = pin_line if method == "PUT" else unpin_line
        req = request(
            method,
            f"/api/ops/lines/{line}",
            json_body=body,
            caller=None,
            route_params={"number": line},
        )
        return handler(req)

    assert pin("PUT", {"user": "bob"}).status_code == 204
    client = call_in(STRANGER, line).find("Dial/Client")
    assert client is not None
    assert client.findtext("Identity") == identity_for("bob")
    assert pin("DELETE").status_code == 204
    assert call_in(STRANGER, line).find("Dial") is None
    assert pin("DELETE").status_code == 404
    assert problem(pin("PUT", {"user": ""}))["errors"][0]["field"] == "user"


def test_a_users_call_to_a_number_makes_its_calls_and_texts_theirs(
    twilio: responses.RequestsMock,
) -> None:
    twilio.post(CALLS_URL, json=twilio_call(to=CONTACT), status=201)
    body = {"to": CONTACT, "message": "hello"}
    assert (
        make_call(request("POST", "/api/makeCall", json_body=body, caller="carol")).status_code
        == 201
    )
    client = call_in().find("Dial/Client")
    assert client is not None
    assert client.findtext("Identity") == identity_for("carol")


# --- app to app ----------------------------------------------------------------------------


def voice_call(caller: str, to: str) -> ET.Element:
    form = [("From", f"client:{identity_for(caller)}"), ("To", to), ("CallSid", "CA" + "8" * 32)]
    return twiml(voice(signed("POST", "/api/voice", form)))


def test_an_app_user_calls_another_by_user_id_and_the_callee_sees_the_callers_name() -> None:
    take_token("alice@example.com", name="Alice Liddell")
    take_token("bob@example.com")
    client = voice_call("alice@example.com", "user:bob@example.com").find("Dial/Client")
    assert client is not None
    assert client.findtext("Identity") == identity_for("bob@example.com")
    assert {p.get("name"): p.get("value") for p in client.iter("Parameter")} == {
        "callerName": "Alice Liddell",
        "callerId": "alice@example.com",
    }
    assert client.get("statusCallback", "").startswith(f"{PUBLIC_BASE_URL}/api/status?ref=")
    # bob has no name claim: his id is shown
    back = voice_call("bob@example.com", "user:alice@example.com").find("Dial/Client")
    assert back is not None
    assert {p.get("name"): p.get("value") for p in back.iter("Parameter")}["callerName"] == (
        "bob@example.com"
    )


@pytest.mark.parametrize("callee", ["user:nobody", "user:alice", "user:"])
def test_an_unknown_user_or_oneself_cannot_be_called(callee: str) -> None:
    take_token("alice")
    answered = voice_call("alice", callee)
    assert answered.find("Dial") is None
    assert answered.findtext("Say") == "Sorry, this call cannot be completed. Goodbye."


def test_make_call_to_app_rings_the_callers_own_app(twilio: responses.RequestsMock) -> None:
    own = f"client:{identity_for('dev@example.com')}"
    twilio.post(CALLS_URL, json=twilio_call(to=own), status=201)
    body = {"to": "app", "message": "Testing incoming calls"}
    answer = make_call(request("POST", "/api/makeCall", json_body=body, caller="dev@example.com"))
    assert answer.status_code == 201
    sent = parse_qs(str(twilio.calls[0].request.body))
    assert (sent["To"], sent["From"]) == ([own], [FROM_NUMBER])
    assert json.loads(answer.get_body())["to"] == own


# --- recordings ----------------------------------------------------------------------------


def alice_has_a_voicemail() -> None:
    recordings.keep(RECORDING_SID, "alice", {"CallSid": "CA" + "9" * 32, "From": CONTACT})


def get(handler: Any, path: str, caller: str | None = "alice") -> func.HttpResponse:
    response: func.HttpResponse = handler(
        request("GET", path, caller=caller, route_params={"sid": RECORDING_SID})
    )
    return response


def test_a_recording_is_served_to_its_owner_with_the_accounts_credentials(
    twilio: responses.RequestsMock,
) -> None:
    alice_has_a_voicemail()
    twilio.get(MEDIA_URL, body=MP3, content_type="audio/mpeg")
    answer = get(get_recording, f"/api/recordings/{RECORDING_SID}")
    assert (answer.status_code, answer.mimetype, answer.get_body()) == (200, "audio/mpeg", MP3)
    assert answer.headers["Cache-Control"].startswith("private")
    sent = twilio.calls[0].request.headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(f"{API_KEY_SID}:{API_KEY_SECRET}".encode()).decode()
    assert get(get_recording, f"/api/recordings/{RECORDING_SID}", "bob").status_code == 404
    assert len(twilio.calls) == 1  # bob's request never reached Twilio


def test_a_signed_link_plays_until_it_expires_and_not_once_altered(
    twilio: responses.RequestsMock,
) -> None:
    alice_has_a_voicemail()
    twilio.get(MEDIA_URL, body=MP3, content_type="audio/mpeg")
    link = json.loads(get(recording_link, f"/api/recordings/{RECORDING_SID}/link").get_body())
    assert link["url"].startswith(f"{PUBLIC_BASE_URL}/api/recordings/{RECORDING_SID}/audio?")
    assert get(recording_link, f"/api/recordings/{RECORDING_SID}/link", "bob").status_code == 404
    path = link["url"].removeprefix(PUBLIC_BASE_URL)
    assert get(recording_audio, path, caller=None).get_body() == MP3
    query = dict(parse_qsl(urlsplit(path).query))
    altered = [
        f"/api/recordings/{RECORDING_SID}/audio?expires={int(query['expires']) + 60}"
        f"&signature={query['signature']}",
        f"/api/recordings/{RECORDING_SID}/audio?expires={query['expires']}"
        f"&signature={query['signature'][:-1]}{'1' if query['signature'].endswith('0') else '0'}",
        f"/api/recordings/{RECORDING_SID}/audio?expires={query['expires']}",
    ]
    expired = media.signed_link(RECORDING_SID, -1).url.removeprefix(PUBLIC_BASE_URL)
    for refused in [*altered, expired]:
        assert get(recording_audio, refused, caller=None).status_code == 403
    assert len(twilio.calls) == 1


def test_deleting_a_recording_deletes_it_at_twilio_too(twilio: responses.RequestsMock) -> None:
    alice_has_a_voicemail()
    assert (
        delete_recording(
            request("DELETE", "/", caller="bob", route_params={"sid": RECORDING_SID})
        ).status_code
        == 404
    )
    twilio.delete(RECORDING_URL, status=204)
    answer = delete_recording(
        request("DELETE", "/", caller="alice", route_params={"sid": RECORDING_SID})
    )
    assert answer.status_code == 204
    assert [c.request.method for c in twilio.calls] == ["DELETE"]
    assert get(get_recording, f"/api/recordings/{RECORDING_SID}").status_code == 404


def test_retention_deletes_old_recordings_at_twilio_and_keeps_one_twilio_would_not_delete(
    twilio: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    monkeypatch.setenv("RETENTION_DAYS", "1")
    with moved(-timedelta(days=2)):
        alice_has_a_voicemail()
    twilio.delete(RECORDING_URL, status=500)  # Twilio fails: the row stays for the next run
    assert purge()["recordings"] == 0
    assert recordings.owner_of(RECORDING_SID) == "alice"
    twilio.delete(RECORDING_URL, status=404)  # already gone there: counts as deleted
    assert purge()["recordings"] == 1
    assert get(get_recording, f"/api/recordings/{RECORDING_SID}").status_code == 404


@pytest.mark.parametrize("sid", ["RE123", "CA" + "4" * 32, "../x"])
def test_a_malformed_recording_sid_is_422(sid: str) -> None:
    answer = get_recording(request("GET", "/", caller="alice", route_params={"sid": sid}))
    assert problem(answer)["status"] == 422
