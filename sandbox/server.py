"""The sandbox's HTTP server: Twilio's REST API for messages and calls, and the outbox page.

Twilio's (2010-04-01, as its published description has it; see sandbox/rest.py):
  GET|POST        /2010-04-01/Accounts/{AccountSid}/Messages.json
  GET|POST|DELETE /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
  GET|POST        /2010-04-01/Accounts/{AccountSid}/Calls.json
  GET|POST|DELETE /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json
The sandbox's own:
  GET  /                       the outbox page (refreshes itself)
  GET  /sandbox/outbox.json    what the page shows: resources, their history, what callees heard
  POST /sandbox/key-presses    {"to": "+1…", "digits": ["1", "2"]}: what that callee presses
  POST /sandbox/fates          {"to": "+1…", "kind": "message"|"call", "status": …, "errorCode": …}:
                               how the next message or call to that number ends
  POST /sandbox/replies        {"from": "+1…", "body": "…"}: that contact texts the app's number;
                               the sandbox posts the signed webhook to the number's SMS URL, as
                               Twilio does, and sends the <Message>s its TwiML answers with
  POST /sandbox/incoming-calls {"from": "+1…"}: that number calls the app's number; the sandbox
                               fetches the number's voice URL and plays the call
  POST /sandbox/client-calls   {"identity": "…", "to": "…"}: the app of that Voice SDK identity
                               places a call; the sandbox fetches the TwiML App's voice URL
  POST /sandbox/clock          {"advance": seconds}: moves the sandbox's clock on (scheduled
                               messages fall due by it; the page shows it)
  POST /sandbox/clients        {"identity": "…", "answers": [false, true]}: whether the app of
                               that Voice SDK identity answers its next rings (it does, unless told)
Recordings, as Twilio's media (basic auth with the account's credentials):
  GET    /2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.mp3   the audio (silence)
  DELETE /2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.json
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import rest
from sandbox.outbox import (
    API_VERSION,
    Call,
    Fate,
    Message,
    Outbox,
    new_sid,
    num_segments,
    silent_mp3,
)
from sandbox.outbox import now as outbox_now
from sandbox.player import MESSAGE_ERRORS, Player
from sandbox.rest import ApiError, Form, one
from sandbox.webhooks import Signer, signed_request

log = logging.getLogger("sandbox")

_RESOURCE = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/"
    r"(?P<kind>Messages|Calls)(?:/(?P<sid>[^/]+))?\.json$"
)
_RECORDING = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Recordings/(?P<sid>RE[0-9a-f]{{32}})"
    r"\.(?P<format>mp3|json)$"
)
_SID = {"Messages": re.compile(r"^(SM|MM)[0-9a-f]{32}$"), "Calls": re.compile(r"^CA[0-9a-f]{32}$")}
_OWN_POSTS = {
    "/sandbox/key-presses",
    "/sandbox/fates",
    "/sandbox/replies",
    "/sandbox/incoming-calls",
    "/sandbox/clients",
    "/sandbox/client-calls",
    "/sandbox/clock",
}
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
FATES = {"message": {"undelivered", "failed"}, "call": {"busy", "no-answer", "failed"}}


@dataclass(frozen=True)
class Account:
    """Whose Twilio this sandbox plays: the credentials the app must present, the numbers it
    owns (a From it does not own is refused as Twilio refuses it), and the number its
    Messaging Service sends from."""

    sid: str
    auth_token: str
    api_key_sid: str | None = None
    api_key_secret: str | None = None
    numbers: frozenset[str] = frozenset({"+15005550006"})  # Twilio's valid test From
    service_sender: str = "+15005550006"
    webhook_shared_key: str | None = None  # sign webhooks with it (HMAC-SHA256), as a Rule does
    sms_url: str | None = None  # the number's "A message comes in" webhook
    voice_url: str | None = None  # the number's "A call comes in" webhook
    app_voice_url: str | None = None  # the TwiML App's Voice URL (the Voice SDK's calls)

    @property
    def owned(self) -> frozenset[str]:
        return self.numbers | {self.service_sender}

    def admits(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        pairs = [(self.sid, self.auth_token)]
        if self.api_key_sid and self.api_key_secret:
            pairs.append((self.api_key_sid, self.api_key_secret))
        return any(
            hmac.compare_digest(user.encode(), u.encode())
            and hmac.compare_digest(password.encode(), p.encode())
            for u, p in pairs
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections when many clients connect at once


class Sandbox:
    """The running sandbox: server, outbox and player."""

    def __init__(
        self, account: Account, *, host: str = "127.0.0.1", port: int = 0, step_seconds: float = 0.2
    ) -> None:
        self.account = account
        self.host = host
        self.outbox = Outbox()
        self.server = _Server((host, port), _handler(self))
        self.player = Player(
            self.outbox,
            account.sid,
            Signer(account.auth_token, account.webhook_shared_key),
            origin=self.url,
            step_seconds=step_seconds,
            service_sender=account.service_sender,
            on_message=self._start_delivery,
        )
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.clock_offset = 0.0
        self._stopped = threading.Event()
        self._scheduler = threading.Thread(target=self._schedule_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_port}"

    def start(self) -> Sandbox:
        self.thread.start()
        self._scheduler.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.server.shutdown()
        self.server.server_close()

    # --- REST --------------------------------------------------------------------------

    def create_message(self, form: Form) -> Message:
        rest.check_message_request(form, self.account.owned)
        service = one(form, "MessagingServiceSid")
        from_ = one(form, "From") or None
        media = form.get("MediaUrl", [])
        send_at = rest.schedule(form, self.now())
        message = Message(
            sid=new_sid("MM" if media else "SM"),
            account_sid=self.account.sid,
            to=one(form, "To") or "",
            from_=from_,
            body=one(form, "Body") or "",
            messaging_service_sid=service,
            media_urls=media,
            status_callback=one(form, "StatusCallback"),
            status="scheduled" if send_at else "accepted" if service and not from_ else "queued",
            send_at=send_at,
        )
        self.outbox.add_message(message)
        if send_at is None:
            self._start_delivery(message)
        return message

    def now(self) -> datetime:
        """The sandbox's clock: real time, moved on by POST /sandbox/clock."""
        return outbox_now() + timedelta(seconds=self.clock_offset)

    def advance(self, data: dict[str, Any]) -> dict[str, Any]:
        seconds = data.get("advance")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("advance: seconds, 0 or more")
        with self.outbox.lock:
            self.clock_offset += float(seconds)
        self._send_due()
        return {"now": self.now().isoformat()}

    def _send_due(self) -> None:
        """Scheduled messages whose time has come go out: queued, sending, sent, delivered."""
        now = self.now()
        with self.outbox.lock:
            due = [
                m
                for m in self.outbox.messages.values()
                if m.status == "scheduled" and m.send_at is not None and m.send_at <= now
            ]
        for message in due:
            self.outbox.move(message, "accepted")
            self._start_delivery(message)

    def _schedule_loop(self) -> None:
        while not self._stopped.wait(0.05):
            self._send_due()

    def update_message(self, message: Message, form: Form) -> Message:
        body, status = one(form, "Body"), rest.choice(form, "Status", {"canceled"})
        if status == "canceled":
            if message.status != "scheduled":
                raise ApiError(400, 30409, "Message is not scheduled and cannot be canceled.")
            self.outbox.move(message, "canceled")
            self.player.report(message, "canceled")
            return message
        if body is not None:
            if body != "":
                raise ApiError(400, 20001, "Body may only be set to '' (to redact it).")
            if message.status in ("accepted", "queued", "sending"):
                raise ApiError(400, 20009, "Cannot redact a message that is being sent.")
            with self.outbox.lock:
                message.body = ""
            self.outbox.touch(message)
        return message

    def delete_message(self, message: Message) -> None:
        if message.status in ("accepted", "queued", "sending"):
            raise ApiError(400, 20009, "Cannot delete message because it is still being sent.")
        with self.outbox.lock:
            del self.outbox.messages[message.sid]

    def create_call(self, form: Form) -> Call:
        rest.check_call_request(form, self.account.owned)
        events = " ".join(form.get("StatusCallbackEvent", [])).split()
        call = Call(
            sid=new_sid("CA"),
            account_sid=self.account.sid,
            to=one(form, "To") or "",
            from_=one(form, "From") or "",
            url=one(form, "Url") or None,
            twiml=one(form, "Twiml") or None,
            method=rest.method(form, "Method"),
            status_callback=one(form, "StatusCallback"),
            status_callback_method=rest.method(form, "StatusCallbackMethod"),
            status_callback_events=set(events),
            time_limit=rest.integer(form, "TimeLimit", 14_400),
            fallback_url=one(form, "FallbackUrl") or None,
        )
        self.outbox.add_call(call)
        threading.Thread(target=self.player.run_call, args=(call,), daemon=True).start()
        return call

    def update_call(self, call: Call, form: Form) -> Call:
        status = rest.choice(form, "Status", {"canceled", "completed"})
        url, twiml = one(form, "Url") or None, one(form, "Twiml") or None
        call_method = rest.method(form, "Method")
        rest.integer(form, "TimeLimit", 0)
        if status is None and url is None and twiml is None:
            return call  # nothing asked: Twilio answers the call as it is
        with self.outbox.lock:
            if not call.live:
                raise ApiError(400, 21220, "Call is not in-progress. Cannot redirect.")
            if status == "completed" or (status == "canceled" and call.status != "in-progress"):
                call.hangup_requested = True
            elif url is not None or twiml is not None:
                call.redirect = (url, twiml, call_method)
            if one(form, "StatusCallback"):
                call.status_callback = one(form, "StatusCallback")
                call.status_callback_method = rest.method(form, "StatusCallbackMethod")
            call.interrupt.set()
        return call

    def delete_call(self, call: Call) -> None:
        if call.live:
            raise ApiError(400, 20009, "Cannot delete a call that is in progress.")
        with self.outbox.lock:
            del self.outbox.calls[call.sid]

    def set_fate(self, data: dict[str, Any]) -> None:
        kind, status, to = data.get("kind"), data.get("status"), data.get("to")
        code = data.get("errorCode")
        if kind not in FATES or status not in FATES[kind] or not isinstance(to, str):
            raise ValueError("kind, status and to are needed; see the sandbox's docstring")
        if kind == "message" and code not in MESSAGE_ERRORS:
            raise ValueError(f"errorCode: one of {sorted(c for c in MESSAGE_ERRORS if c)}")
        with self.outbox.lock:
            self.outbox.fates.setdefault((kind, to), []).append(Fate(status, code))

    def reply(self, data: dict[str, Any]) -> dict[str, Any]:
        """A contact texts the account's number: keep the inbound message, post Twilio's
        webhook for it, and send what the TwiML answer says to send."""
        sender, body = data.get("from"), data.get("body")
        if not isinstance(sender, str) or not _E164.match(sender):
            raise ValueError("from: an E.164 number such as +14155550177")
        if not isinstance(body, str) or not 1 <= len(body) <= 1600:
            raise ValueError("body: 1 to 1600 characters")
        if self.account.sms_url is None:
            raise ValueError("the sandbox has no SMS URL for its number (see --sms-url)")
        number = self.account.service_sender
        message = Message(
            sid=new_sid("SM"),
            account_sid=self.account.sid,
            to=number,
            from_=sender,
            body=body,
            messaging_service_sid=None,
            media_urls=[],
            status_callback=None,
            direction="inbound",
            status="received",
        )
        self.outbox.add_message(message)
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "SmsMessageSid": message.sid,
            "AccountSid": self.account.sid,
            "From": sender,
            "To": number,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": str(num_segments(body)),
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
        }
        answer = signed_request(self.account.sms_url, params, self.player.signer)
        replies = _twiml_messages(answer.body) if answer.status == 200 else []
        for text in replies:  # Twilio sends a reply the TwiML names, from the number written to
            self.outbox.add_message(
                Message(
                    sid=new_sid("SM"),
                    account_sid=self.account.sid,
                    to=sender,
                    from_=number,
                    body=text,
                    messaging_service_sid=None,
                    media_urls=[],
                    status_callback=None,
                    direction="outbound-reply",
                    status="sent",
                )
            )
        return {"sid": message.sid, "answered": answer.status, "replies": replies}

    def incoming_call(self, data: dict[str, Any]) -> dict[str, Any]:
        """A number calls the account's: the sandbox fetches the number's voice URL, signed,
        and plays the call as it plays any."""
        sender = data.get("from")
        if not isinstance(sender, str) or not _E164.match(sender):
            raise ValueError("from: an E.164 number such as +14155550177")
        if self.account.voice_url is None:
            raise ValueError("the sandbox has no voice URL for its number (see --voice-url)")
        return {"sid": self._inbound(sender, self.account.service_sender, self.account.voice_url)}

    def client_call(self, data: dict[str, Any]) -> dict[str, Any]:
        """The Voice SDK of `identity` connects a call to `to`: Twilio asks the TwiML App's
        Voice URL what to do, From `client:<identity>`."""
        identity, to = data.get("identity"), data.get("to")
        if not isinstance(identity, str) or not identity or not isinstance(to, str) or not to:
            raise ValueError("identity and to are needed")
        if self.account.app_voice_url is None:
            raise ValueError("the sandbox has no TwiML App voice URL (see --app-voice-url)")
        return {"sid": self._inbound(f"client:{identity}", to, self.account.app_voice_url)}

    def _inbound(self, from_: str, to: str, url: str) -> str:
        call = Call(
            sid=new_sid("CA"),
            account_sid=self.account.sid,
            to=to,
            from_=from_,
            url=url,
            twiml=None,
            method="POST",
            status_callback=None,
            status_callback_method="POST",
            status_callback_events=set(),
            time_limit=14_400,
            direction="inbound",
        )
        self.outbox.add_call(call)
        threading.Thread(target=self.player.run_call, args=(call,), daemon=True).start()
        return call.sid

    def set_client_answers(self, data: dict[str, Any]) -> None:
        identity, answers = data.get("identity"), data.get("answers")
        if not isinstance(identity, str) or not identity:
            raise ValueError("identity: the Voice SDK identity")
        if not isinstance(answers, list) or not all(isinstance(a, bool) for a in answers):
            raise ValueError("answers: a list of true (answers) and false (does not)")
        with self.outbox.lock:
            self.outbox.client_answers.setdefault(identity, []).extend(answers)

    def recording(self, method: str, match: re.Match[str], authorization: str | None) -> bytes:
        """A recording's audio, or its deletion, for the account's credentials only."""
        if not self.account.admits(authorization) or match["account"] != self.account.sid:
            raise ApiError(401, 20003, "Authenticate")
        with self.outbox.lock:
            found = self.outbox.recordings.get(match["sid"])
            if found is None:
                raise ApiError(404, 20404, "The requested resource was not found.")
            if method == "DELETE":
                del self.outbox.recordings[found.sid]
                return b""
        return silent_mp3(found.duration)

    def _start_delivery(self, message: Message) -> None:
        threading.Thread(target=self.player.deliver, args=(message,), daemon=True).start()


def _handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "AhoySandbox/1.0"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/":
                page = files("sandbox").joinpath("outbox.html").read_bytes()
                self._send(200, page, "text/html; charset=utf-8")
            elif path == "/sandbox/outbox.json":
                self._json(200, sandbox.outbox.snapshot())
            elif (recording := _RECORDING.match(path)) and recording["format"] == "mp3":
                self._recording("GET", recording)
            else:
                self._rest("GET")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path in _OWN_POSTS:
                self._own(path)
            else:
                self._rest("POST")

        def do_DELETE(self) -> None:
            recording = _RECORDING.match(urlsplit(self.path).path)
            if recording and recording["format"] == "json":
                self._recording("DELETE", recording)
            else:
                self._rest("DELETE")

        def _recording(self, method: str, match: re.Match[str]) -> None:
            try:
                audio = sandbox.recording(method, match, self.headers.get("Authorization"))
            except ApiError as error:
                self._json(error.status, error.body())
                return
            if method == "DELETE":
                self._send(204, b"", "application/json")
            else:
                self._send(200, audio, "audio/mpeg")

        def do_PUT(self) -> None:
            self._rest("PUT")

        def do_PATCH(self) -> None:
            self._rest("PATCH")

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            """What the stdlib answers itself (a malformed request line, a method it has no
            handler for) comes as Twilio's JSON error body too, never an HTML page."""
            self.close_connection = True
            self.request_version = self.protocol_version  # no HTTP/0.9 answers without headers
            twilio_code = {404: 20404, 405: 20004, 501: 20004}.get(code, 20001)
            self._json(code, ApiError(code, twilio_code, message or "Bad request.").body())

        def _own(self, path: str) -> None:
            try:
                data = json.loads(self._body() or b"{}")
                if path == "/sandbox/replies":
                    self._json(201, sandbox.reply(data))
                    return
                if path == "/sandbox/incoming-calls":
                    self._json(201, sandbox.incoming_call(data))
                    return
                if path == "/sandbox/client-calls":
                    self._json(201, sandbox.client_call(data))
                    return
                if path == "/sandbox/clock":
                    self._json(200, sandbox.advance(data))
                    return
                if path == "/sandbox/clients":
                    sandbox.set_client_answers(data)
                    self._json(204, None)
                    return
                if path == "/sandbox/fates":
                    sandbox.set_fate(data)
                else:
                    digits = [str(d) for d in data["digits"]]
                    with sandbox.outbox.lock:
                        sandbox.outbox.key_presses[str(data["to"])] = digits
            except (ValueError, KeyError, TypeError) as wrong:
                self._json(400, {"message": str(wrong)})
                return
            self._json(204, None)

        def _rest(self, method: str) -> None:
            parts = urlsplit(self.path)
            match = _RESOURCE.match(parts.path)
            try:
                if match is None:
                    raise ApiError(404, 20404, "The requested resource was not found.")
                if not sandbox.account.admits(self.headers.get("Authorization")) or (
                    match["account"] != sandbox.account.sid
                ):
                    raise ApiError(401, 20003, "Authenticate")
                body = self._body()
                try:
                    query = parse_qs(parts.query, keep_blank_values=True, errors="strict")
                    form = parse_qs(body.decode(), keep_blank_values=True, errors="strict")
                except UnicodeDecodeError:
                    raise ApiError(400, 20001, "The request is not valid UTF-8.") from None
                self._json(*_route(sandbox, method, match, parts.path, query, form))
            except ApiError as error:
                headers = {}
                if error.status == 401:
                    headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
                self._json(error.status, error.body(), headers)

        def _body(self) -> bytes:
            length = self.headers.get("Content-Length") or "0"
            return self.rfile.read(int(length) if length.isdigit() else 0)

        def _json(
            self, status: int, payload: object, headers: dict[str, str] | None = None
        ) -> None:
            body = b"" if payload is None else json.dumps(payload).encode()
            self._send(status, body, "application/json", headers)

        def _send(
            self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # request lines carry numbers in query strings

    return Handler


def _twiml_messages(twiml: str) -> list[str]:
    """The texts of the <Message>s of a MessagingResponse (none if it is not one)."""
    try:
        root = ET.fromstring(twiml)  # noqa: S314  # the app's answer on loopback
    except ET.ParseError:
        return []
    if root.tag != "Response":
        return []
    texts = []
    for message in root.iter("Message"):
        body = message.find("Body")  # <Message><Body>…</Body></Message>, or the text itself
        texts.append("".join((body if body is not None else message).itertext()))
    return texts


def _route(
    sandbox: Sandbox, method: str, match: re.Match[str], path: str, query: Form, form: Form
) -> tuple[int, object]:
    kind, sid = match["kind"], match["sid"]
    messages = kind == "Messages"
    if method not in ("GET", "POST", "DELETE"):
        raise ApiError(405, 20004, "Method not allowed.")
    if sid is None:
        if method == "POST":
            created = sandbox.create_message(form) if messages else sandbox.create_call(form)
            return 201, created.to_json()
        if method == "GET":
            listing = rest.list_messages if messages else rest.list_calls
            return 200, listing(sandbox.outbox, path, query)
        raise ApiError(405, 20004, "Method not allowed.")
    store: dict[str, Any] = sandbox.outbox.messages if messages else sandbox.outbox.calls
    resource = store.get(sid) if _SID[kind].match(sid) else None
    if resource is None:
        raise ApiError(404, 20404, f"The requested resource {path} was not found")
    if method == "GET":
        return 200, resource.to_json()
    if method == "DELETE":
        (sandbox.delete_message if messages else sandbox.delete_call)(resource)
        return 204, None
    updated = (
        sandbox.update_message(resource, form) if messages else sandbox.update_call(resource, form)
    )
    return 200, updated.to_json()
