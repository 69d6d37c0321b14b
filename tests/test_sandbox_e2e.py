"""End to end with no mocks: the local host, the sandbox playing Twilio, and Azurite."""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import Account, Sandbox
from sandbox.outbox import Call
from tests.support.azurite import Azurite
from tests.support.devhost_process import FUNCTION_KEY, SANDBOX_FROM, DevHost, sandbox_app
from tests.support.polling import eventually
from tests.support.sandbox_fates import fate
from tests.support.settings import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    TWIML_APP_SID,
)

KEY = {"x-functions-key": FUNCTION_KEY}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    running = Sandbox(Account(ACCOUNT_SID, AUTH_TOKEN), step_seconds=0.05).start()
    yield running
    running.stop()


def start_app(sandbox: Sandbox, azurite: Azurite, tmp: Path, **overrides: str) -> DevHost:
    return sandbox_app(sandbox.url, azurite, tmp, **overrides)


@pytest.fixture(scope="module")
def app(
    sandbox: Sandbox, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    host = start_app(sandbox, azurite, tmp_path_factory.mktemp("app"))
    yield host.url
    host.stop()


def app_post(app: str, path: str, body: dict[str, str]) -> requests.Response:
    """A request from the mobile app (with the function key) to Ahoy."""
    return requests.post(f"{app}{path}", json=body, headers=KEY, timeout=10)


def view_when(app: str, path: str, status: str) -> dict[str, Any] | None:
    """The app's view of a message or call once it shows `status` (None if it never does)."""

    def view() -> dict[str, Any] | None:
        seen: dict[str, Any] = requests.get(f"{app}{path}", headers=KEY, timeout=10).json()
        return seen if seen["status"] == status else None

    found: dict[str, Any] | None = eventually(view)
    return found


def owner_call(sandbox: Sandbox, url: str, to: str = "+14155550142") -> Call:
    """A call the account owner starts with a flow URL, as from Twilio's console or API."""
    created = requests.post(
        f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json",
        data={"To": to, "From": SANDBOX_FROM, "Url": url},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=10,
    )
    assert created.status_code == 201
    call = sandbox.outbox.calls[created.json()["sid"]]
    assert eventually(lambda: call.status in ("completed", "busy", "no-answer"))
    return call


def test_an_sms_is_delivered_and_the_app_sees_it(app: str, sandbox: Sandbox) -> None:
    sent = app_post(app, "/api/sendSms", {"to": "+14155551234", "body": "ahoy hoy"})
    assert sent.status_code == 201
    sid = sent.json()["sid"]

    view = view_when(app, f"/api/messages/{sid}", "delivered")
    assert view is not None, "the message never showed as delivered"
    assert [h["status"] for h in view["history"]] == ["queued", "sent", "delivered"]
    assert sandbox.outbox.messages[sid].body == "ahoy hoy"


def test_a_call_speaks_the_sealed_message_and_completes(app: str, sandbox: Sandbox) -> None:
    placed = app_post(
        app, "/api/makeCall", {"to": "+14155551234", "message": "Hello from Ahoy", "voice": "woman"}
    )
    assert placed.status_code == 201
    sid = placed.json()["sid"]

    view = view_when(app, f"/api/calls/{sid}", "completed")
    assert view is not None, "the call never completed"
    assert [h["status"] for h in view["history"]] == [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    # The sandbox fetched /api/twiml with a signature Ahoy accepted: the text was spoken.
    assert sandbox.outbox.calls[sid].transcript == ["Say: Hello from Ahoy"]


@pytest.mark.parametrize(
    ("status", "code", "history"),
    [
        ("undelivered", 30003, ["queued", "sent", "undelivered"]),
        ("undelivered", 30007, ["queued", "sent", "undelivered"]),
        ("failed", 30006, ["queued", "failed"]),
        ("undelivered", 30034, ["queued", "sent", "undelivered"]),
    ],
)
def test_a_message_that_fails_shows_its_status_and_code_in_the_app(
    app: str, sandbox: Sandbox, status: str, code: int, history: list[str]
) -> None:
    fate(sandbox, "+14155551299", "message", status, code)
    sent = app_post(app, "/api/sendSms", {"to": "+14155551299", "body": "will not arrive"})
    assert sent.status_code == 201
    view = view_when(app, f"/api/messages/{sent.json()['sid']}", status)
    assert view is not None, f"the message never showed as {status}"
    assert view["errorCode"] == code
    assert view["error"]["code"] == code  # explained (tests/test_delivery_errors.py)
    assert [h["status"] for h in view["history"]] == history


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed"])
def test_a_call_that_is_not_answered_shows_how_it_ended_in_the_app(
    app: str, sandbox: Sandbox, status: str
) -> None:
    fate(sandbox, "+14155551298", "call", status)
    placed = app_post(app, "/api/makeCall", {"to": "+14155551298", "message": "nobody hears"})
    assert placed.status_code == 201
    sid = placed.json()["sid"]
    view = view_when(app, f"/api/calls/{sid}", status)
    assert view is not None, f"the call never showed as {status}"
    assert view["history"][-1]["status"] == status
    assert sandbox.outbox.calls[sid].transcript == []  # no TwiML was ever fetched


def test_a_twiml_url_that_fails_signature_validation_is_an_application_error(
    app: str, sandbox: Sandbox
) -> None:
    # As an account owner could misconfigure it in the console: Ahoy's TwiML URL under
    # another host name than PUBLIC_BASE_URL. Twilio signs what it fetches; Ahoy refuses.
    wrong_host = app.replace("127.0.0.1", "localhost") + "/api/twiml?Message%5B0%5D=hi"
    call = owner_call(sandbox, wrong_host, to="+14155551234")
    assert call.status == "completed"
    assert call.transcript[0].startswith("Application error 11200: HTTP 403")


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [
        ("+15005550001", 422, 21211),
        ("+15005550002", 422, 21612),
        ("+15005550003", 422, 21408),
        ("+15005550004", 422, 21610),
        ("+15005550009", 422, 21614),
    ],
)
def test_twilio_test_numbers_map_to_the_documented_statuses(
    app: str, to: str, status: int, code: int
) -> None:
    response = app_post(app, "/api/sendSms", {"to": to, "body": "hi"})
    assert response.status_code == status
    assert response.json()["twilioCode"] == code
    assert response.json()["errors"][0]["field"] == "to"


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21217),
        ("+15005550002", 21214),
        ("+15005550003", 21215),
        ("+15005550004", 21216),
    ],
)
def test_twilio_call_test_numbers_are_422_on_to(app: str, to: str, code: int) -> None:
    response = app_post(app, "/api/makeCall", {"to": to, "message": "hi"})
    assert response.status_code == 422
    assert response.json()["twilioCode"] == code
    assert response.json()["errors"][0]["field"] == "to"


@pytest.mark.parametrize(
    ("path", "sender", "status", "code"),
    [
        ("/api/sendSms", "+15005550001", 500, 21212),  # not a valid number
        ("/api/sendSms", "+15005550007", 500, 21606),  # not able to send SMS
        ("/api/sendSms", "+15005550008", 503, 21611),  # too many queued on it
        ("/api/makeCall", "+15005550001", 500, 21212),
        ("/api/makeCall", "+14155550999", 500, 21210),  # not this account's
    ],
)
def test_twilio_sender_test_numbers_through_the_app(
    sandbox: Sandbox,
    azurite: Azurite,
    tmp_path: Path,
    path: str,
    sender: str,
    status: int,
    code: int,
) -> None:
    body = {"to": "+14155551234", "body": "hi", "message": "hi"}
    body.pop("message" if path == "/api/sendSms" else "body")
    response = post_to_a_misconfigured_app(
        sandbox, azurite, tmp_path, path, body, TWILIO_FROM_NUMBER=sender
    )
    assert response.status_code == status
    assert response.json()["twilioCode"] == code
    if status == 500:
        assert response.json()["settings"] == ["TWILIO_FROM_NUMBER"]
    else:
        assert int(response.headers["Retry-After"]) > 0


def post_to_a_misconfigured_app(
    sandbox: Sandbox, azurite: Azurite, tmp: Path, path: str, body: dict[str, str], **bad: str
) -> requests.Response:
    """One request to an app started with `bad` settings, then the app is stopped."""
    host = start_app(sandbox, azurite, tmp, **bad)
    try:
        return app_post(host.url, path, body)
    finally:
        host.stop()


def test_wrong_credentials_are_a_misconfiguration(
    sandbox: Sandbox, azurite: Azurite, tmp_path: Path
) -> None:
    response = post_to_a_misconfigured_app(
        sandbox,
        azurite,
        tmp_path,
        "/api/makeCall",
        {"to": "+14155551234", "message": "hi"},
        TWILIO_AUTH_TOKEN="not-the-accounts-token",
    )
    assert response.status_code == 500
    assert response.json()["detail"] == "Twilio rejected this app's credentials."
    assert response.json()["twilioCode"] == 20003


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


def chromium(*args: str, profile: Path) -> str:
    import os
    import shutil
    import subprocess

    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it")
        pytest.skip("install Debian's chromium to run the outbox page test")
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def test_the_outbox_page_shows_messages_and_calls_in_a_real_browser(
    app: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    sent = app_post(app, "/api/sendSms", {"to": "+14155550199", "body": "seen in the browser"})
    placed = app_post(
        app, "/api/makeCall", {"to": "+14155550199", "message": "Spoken in the browser"}
    )
    assert eventually(lambda: sandbox.outbox.calls[placed.json()["sid"]].status == "completed")
    assert eventually(lambda: sandbox.outbox.messages[sent.json()["sid"]].status == "delivered")

    dom = chromium(
        "--virtual-time-budget=3000", "--dump-dom", f"{sandbox.url}/", profile=tmp_path / "a"
    )
    assert "seen in the browser" in dom
    assert "Say: Spoken in the browser" in dom
    assert "delivered" in dom
    assert "Reply as a contact" in dom  # the form that makes a contact write
    assert "Call the app's number" in dom
    assert dom.index("seen in the browser") < dom.index("ahoy hoy")  # newest first

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "sandbox-outbox.png"
    screenshot.unlink(missing_ok=True)
    chromium(
        "--virtual-time-budget=3000",
        "--window-size=1280,900",
        f"--screenshot={screenshot}",
        f"{sandbox.url}/",
        profile=tmp_path / "b",
    )
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("query", "transcript"),
    [
        ("Message[0]=Hello&Pause[0]=1&Message[1]=Bye", ["Say: Hello", "Pause: 1 s", "Say: Bye"]),
        (
            "mode=forward&PhoneNumber=%2B14155551234",
            ["Dial: Number +14155551234 (caller id +15005550006)", "Hangup"],
        ),
        (
            "mode=simulring&PhoneNumbers[0]=%2B14155551234&PhoneNumbers[1]=%2B14155551235",
            ["Dial: Number +14155551234, Number +14155551235 (caller id +15005550006)", "Hangup"],
        ),
        (
            "mode=findme&PhoneNumbers[0]=%2B14155551234",
            ["Dial: Number +14155551234 (caller id +15005550006)", "Hangup"],
        ),
        ("mode=hangup", ["Hangup"]),
        ("mode=reject&Reason=busy", ["Reject: busy"]),
        ("mode=pause&Length=2", ["Pause: 2 s"]),
        (
            "mode=forward&PhoneNumber=%2B19005550100",
            ["Say: Sorry, this call cannot be completed. Goodbye.", "Hangup"],
        ),
    ],
)
def test_the_sandbox_plays_each_flow(
    app: str, sandbox: Sandbox, query: str, transcript: list[str]
) -> None:
    call = owner_call(sandbox, f"{app}/api/twiml?{query}")
    assert call.transcript == transcript


def test_the_sandbox_plays_a_menu_choice(app: str, sandbox: Sandbox) -> None:
    requests.post(
        f"{sandbox.url}/sandbox/key-presses",
        json={"to": "+14155550143", "digits": ["1"]},
        timeout=10,
    )
    option = f"{app}/api/twiml?Message%5B0%5D=You+chose+one"
    query = f"mode=menu&Message=Press+one&Options[1]={requests.utils.quote(option, safe='')}"
    call = owner_call(sandbox, f"{app}/api/twiml?{query}", to="+14155550143")
    assert call.transcript == [
        "Say: Press one",
        "Gather: callee pressed 1",
        f"Redirect: {option}",
        "Say: You chose one",
    ]


def test_the_sandbox_leaves_a_voicemail_and_the_owner_is_texted(app: str, sandbox: Sandbox) -> None:
    query = "mode=voicemail&Message=Leave+a+message&Transcribe=true&NotifyNumber=%2B14155550144"
    call = owner_call(sandbox, f"{app}/api/twiml?{query}")
    assert call.transcript == [
        "Say: Leave a message",
        "Record: the callee leaves a message",
        "Say: Thank you. Goodbye.",
        "Hangup",
    ]
    texts = [m for m in sandbox.outbox.messages.values() if m.to == "+14155550144"]
    assert len(texts) == 1
    # An outbound call: the "caller" Twilio reports is the app's own number.
    assert texts[0].body.startswith(f"New voicemail from {SANDBOX_FROM}: {app}/api/recordings/RE")


SHARED_KEY = "sandbox-shared-key-0123456789abcdef"


@pytest.mark.parametrize("app_has_the_key", [True, False])
def test_webhooks_signed_with_a_shared_key_run_a_send_and_a_call_end_to_end(
    azurite: Azurite, tmp_path: Path, app_has_the_key: bool
) -> None:
    # The account's Webhook Rule signs every webhook with a SharedKey and HMAC-SHA256.
    signing = Sandbox(
        Account(ACCOUNT_SID, AUTH_TOKEN, webhook_shared_key=SHARED_KEY), step_seconds=0.05
    ).start()
    overrides = {"TWILIO_WEBHOOK_SHARED_KEY": SHARED_KEY} if app_has_the_key else {}
    host = start_app(signing, azurite, tmp_path, **overrides)
    try:
        sent = app_post(host.url, "/api/sendSms", {"to": "+14155551234", "body": "keyed"})
        placed = app_post(host.url, "/api/makeCall", {"to": "+14155551234", "message": "keyed"})
        assert sent.status_code == placed.status_code == 201
        call_sid = placed.json()["sid"]
        if app_has_the_key:
            assert view_when(host.url, f"/api/messages/{sent.json()['sid']}", "delivered")
            assert view_when(host.url, f"/api/calls/{call_sid}", "completed")
            assert signing.outbox.calls[call_sid].transcript == ["Say: keyed"]
        else:  # every webhook refused: the call cannot fetch its TwiML, no status is recorded
            assert eventually(lambda: signing.outbox.calls[call_sid].status == "completed")
            assert (
                signing.outbox.calls[call_sid]
                .transcript[0]
                .startswith("Application error 11200: HTTP 403")
            )
            seen = requests.get(f"{host.url}/api/calls/{call_sid}", headers=KEY, timeout=10)
            assert seen.json()["status"] == "queued"  # the callbacks never landed
    finally:
        host.stop()
        signing.stop()


def test_a_contact_reply_reaches_the_user_who_wrote_and_no_one_else(
    sandbox: Sandbox, azurite: Azurite, tmp_path: Path
) -> None:
    """Two servers' named keys are two callers: each writes, a contact replies from the
    sandbox's page endpoint, and only the later writer to that contact sees it."""
    keys = {"alice": "alice-secret-key", "bob": "bob-secret-key"}
    hashes = ",".join(f"{n}:{hashlib.sha256(k.encode()).hexdigest()}" for n, k in keys.items())
    host = start_app(sandbox, azurite, tmp_path, CALLER_KEYS=hashes)
    sandbox.account = replace(sandbox.account, sms_url=f"{host.url}/api/incomingSms")
    contact = "+14155550161"

    def as_(name: str, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"X-Ahoy-Key": keys[name]}
        return requests.request(method, f"{host.url}{path}", json=body, headers=headers, timeout=10)

    def thread(name: str) -> list[tuple[str, str]]:
        answer = as_(name, "GET", f"/api/conversations/{contact}")
        assert answer.status_code == 200
        return [(m["direction"], m["body"]) for m in answer.json()["items"]]

    def contact_replies(text: str) -> None:
        answer = requests.post(
            f"{sandbox.url}/sandbox/replies", json={"from": contact, "body": text}, timeout=10
        )
        assert answer.status_code == 201
        assert answer.json()["answered"] == 200

    try:
        assert as_("alice", "POST", "/api/sendSms", {"to": contact, "body": "dinner?"}).ok
        assert as_("bob", "POST", "/api/sendSms", {"to": "+14155550162", "body": "hi"}).ok
        contact_replies("yes, at 7")
        assert thread("alice") == [("in", "yes, at 7"), ("out", "dinner?")]
        assert thread("bob") == []
        [summary] = as_("alice", "GET", "/api/conversations").json()["items"]
        assert (summary["number"], summary["unread"]) == (contact, 1)
        assert as_("alice", "POST", f"/api/conversations/%2B{contact[1:]}/read").status_code == 204

        assert as_("bob", "POST", "/api/sendSms", {"to": contact, "body": "me too?"}).ok
        contact_replies("sure, bob")  # bob wrote last: the thread is his now
        assert thread("bob") == [("in", "sure, bob"), ("out", "me too?")]
        assert ("in", "sure, bob") not in thread("alice")
        inbound = [m for m in sandbox.outbox.messages.values() if m.direction == "inbound"]
        assert [m.body for m in inbound][-2:] == ["yes, at 7", "sure, bob"]
    finally:
        host.stop()


def test_the_readmes_jwt_try_out_works_with_the_dev_issuer(
    sandbox: Sandbox, azurite: Azurite, tmp_path: Path
) -> None:
    """CALLER_AUTH=jwt locally, as the README says: scripts/dev_issuer.py mints the tokens."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import dev_issuer  # scripts/dev_issuer.py

    issuer = dev_issuer.serve("127.0.0.1", 0)
    threading.Thread(target=issuer.serve_forever, daemon=True).start()
    origin = dev_issuer.settings(issuer)["OIDC_ISSUER"]
    host = start_app(sandbox, azurite, tmp_path, DEV_PRINCIPAL="", **dev_issuer.settings(issuer))

    def as_(user: str | None, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {}
        if user is not None:
            token = requests.get(f"{origin}/token?sub={user}", timeout=10).text
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{host.url}{path}", json=body, headers=headers, timeout=10)

    try:
        sent = as_("alice", "POST", "/api/sendSms", {"to": "+14155550171", "body": "hi"})
        assert sent.status_code == 201
        assert [m["sid"] for m in as_("alice", "GET", "/api/messages").json()["items"]] == [
            sent.json()["sid"]
        ]
        assert as_("bob", "GET", "/api/messages").json()["items"] == []
        refused = as_(None, "GET", "/api/messages")
        assert (refused.status_code, refused.headers["WWW-Authenticate"]) == (401, "Bearer")
    finally:
        host.stop()
        issuer.shutdown()


def test_calls_reach_the_app_end_to_end(azurite: Azurite, tmp_path: Path) -> None:
    """Through the local host and the sandbox: a call from a number a user texted rings the
    user's app, then leaves a voicemail in their thread that only they can hear; an app user
    calls another by user id, who sees the caller's name; makeCall rings the caller's own app."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import dev_issuer  # scripts/dev_issuer.py

    issuer = dev_issuer.serve("127.0.0.1", 0)
    threading.Thread(target=issuer.serve_forever, daemon=True).start()
    origin = dev_issuer.settings(issuer)["OIDC_ISSUER"]
    twilio = Sandbox(
        Account(ACCOUNT_SID, AUTH_TOKEN, API_KEY_SID, API_KEY_SECRET), step_seconds=0.05
    ).start()
    host = start_app(
        twilio,
        azurite,
        tmp_path,
        DEV_PRINCIPAL="",
        TWILIO_API_KEY_SID=API_KEY_SID,
        TWILIO_API_KEY_SECRET=API_KEY_SECRET,
        TWILIO_TWIML_APP_SID=TWIML_APP_SID,
        **dev_issuer.settings(issuer),
    )
    twilio.account = replace(
        twilio.account,
        voice_url=f"{host.url}/api/incomingCall",
        app_voice_url=f"{host.url}/api/voice",
    )
    contact = "+14155550163"
    tokens = {
        who: requests.get(f"{origin}/token?{query}", timeout=10).text
        for who, query in (("alice", "sub=alice-1&name=Alice%20Liddell"), ("bob", "sub=bob-2"))
    }

    def as_(who: str | None, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
        return requests.request(method, f"{host.url}{path}", json=body, headers=headers, timeout=10)

    def sandbox(path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{twilio.url}/sandbox/{path}", json=body, timeout=10)

    def finished(sid: str) -> Call:
        call = twilio.outbox.calls[sid]
        assert eventually(lambda: call.status in ("completed", "no-answer", "busy", "failed"))
        return call

    try:
        identities = {who: as_(who, "GET", "/api/token").json()["identity"] for who in tokens}
        assert as_("alice", "POST", "/api/sendSms", {"to": contact, "body": "call me"}).ok

        # alice's app does not answer: the caller leaves a voicemail in alice's thread.
        assert sandbox("clients", {"identity": identities["alice"], "answers": [False]}).ok
        rang = finished(sandbox("incoming-calls", {"from": contact}).json()["sid"])
        assert rang.transcript[:3] == [
            f"Dial: Client {identities['alice']} with callerName={contact}",
            f"No answer from client:{identities['alice']}",
            "Say: Nobody can take your call. Please leave a message after the beep.",
        ]
        assert rang.transcript[-2:] == ["Say: Thank you. Goodbye.", "Hangup"]
        [voicemail, _] = as_("alice", "GET", f"/api/conversations/{contact}").json()["items"]
        recording = voicemail["recordingSid"]
        assert (voicemail["direction"], voicemail["body"]) == ("in", "Voicemail (3 s)")
        heard = as_("alice", "GET", f"/api/recordings/{recording}")
        assert (heard.status_code, heard.headers["Content-Type"]) == (200, "audio/mpeg")
        assert (
            heard.content
            == requests.get(
                f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording}.mp3",
                auth=(ACCOUNT_SID, AUTH_TOKEN),
                timeout=10,
            ).content
        )
        assert as_("bob", "GET", f"/api/recordings/{recording}").status_code == 404
        link = as_("alice", "GET", f"/api/recordings/{recording}/link").json()["url"]
        assert requests.get(link, timeout=10).content == heard.content
        altered = link[:-1] + ("1" if link.endswith("0") else "0")  # its last digit changed
        assert requests.get(altered, timeout=10).status_code == 403

        # alice calls bob by his user id: bob's app hears alice's name.
        called = finished(
            sandbox("client-calls", {"identity": identities["alice"], "to": "user:bob-2"}).json()[
                "sid"
            ]
        )
        assert called.transcript[0] == (
            f"Dial: Client {identities['bob']} with callerName=Alice Liddell, callerId=alice-1"
        )
        [history] = as_("alice", "GET", "/api/calls").json()["items"]
        assert history["to"] == "user:bob-2"

        # bob tries incoming calls with nothing but the sandbox: makeCall rings his own app.
        placed = as_("bob", "POST", "/api/makeCall", {"to": "app", "message": "Ring ring"})
        assert placed.status_code == 201
        assert finished(placed.json()["sid"]).transcript == ["Say: Ring ring"]
        assert twilio.outbox.calls[placed.json()["sid"]].to == f"client:{identities['bob']}"
    finally:
        host.stop()
        twilio.stop()
        issuer.shutdown()


def test_stop_from_the_sandbox_stops_sends_and_start_lets_them_through(
    app: str, sandbox: Sandbox
) -> None:
    sandbox.account = replace(sandbox.account, sms_url=f"{app}/api/incomingSms")
    contact = "+14155550164"

    def contact_texts(text: str) -> None:
        answer = requests.post(
            f"{sandbox.url}/sandbox/replies", json={"from": contact, "body": text}, timeout=10
        )
        assert answer.json()["answered"] == 200

    def sent_to_contact() -> int:
        return sum(m.to == contact for m in list(sandbox.outbox.messages.values()))

    contact_texts("Stop")
    refused = app_post(app, "/api/sendSms", {"to": contact, "body": "still there?"})
    assert (refused.status_code, refused.json()["type"]) == (
        422,
        "urn:ahoy:problem:recipient-opted-out",
    )
    assert sent_to_contact() == 0
    contact_texts("START")
    assert app_post(app, "/api/sendSms", {"to": contact, "body": "welcome back"}).status_code == 201
    assert sent_to_contact() == 1


def test_a_scheduled_message_goes_at_its_time_and_a_canceled_one_never(
    sandbox: Sandbox, azurite: Azurite, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    host = start_app(sandbox, azurite, tmp_path, TWILIO_MESSAGING_SERVICE_SID="MG" + "4" * 32)
    try:
        at = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
        kept = app_post(
            host.url, "/api/sendSms", {"to": "+14155550165", "body": "later", "sendAt": at}
        )
        dropped = app_post(
            host.url, "/api/sendSms", {"to": "+14155550166", "body": "no", "sendAt": at}
        )
        assert kept.json()["status"] == dropped.json()["status"] == "scheduled"
        too_soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        early = app_post(
            host.url, "/api/sendSms", {"to": "+14155550167", "body": "x", "sendAt": too_soon}
        )
        assert early.status_code == 422  # Ahoy's window, before Twilio is asked
        canceled = requests.delete(
            f"{host.url}/api/messages/{dropped.json()['sid']}", headers=KEY, timeout=10
        )
        assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")

        requests.post(f"{sandbox.url}/sandbox/clock", json={"advance": 10 * 60}, timeout=10)
        assert sandbox.outbox.messages[kept.json()["sid"]].status == "scheduled"  # not yet
        requests.post(f"{sandbox.url}/sandbox/clock", json={"advance": 11 * 60}, timeout=10)
        view = view_when(host.url, f"/api/messages/{kept.json()['sid']}", "delivered")
        assert view is not None, "the scheduled message was never delivered"
        assert view["history"][0]["status"] == "scheduled"
        assert sandbox.outbox.messages[dropped.json()["sid"]].status == "canceled"
    finally:
        host.stop()  # the sandbox's clock stays 21 minutes on: only schedules read it
