"""The sandbox's HTTP server: Twilio's REST API for messages and calls, and the outbox page.

POST|GET /2010-04-01/Accounts/{AccountSid}/Messages.json, GET .../Messages/{Sid}.json
POST|GET /2010-04-01/Accounts/{AccountSid}/Calls.json,    GET .../Calls/{Sid}.json
GET  /                       the outbox page (refreshes itself)
GET  /sandbox/outbox.json    what the page shows
POST /sandbox/key-presses    {"to": "+1…", "digits": ["1", "2"]}: what that callee presses
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.outbox import API_VERSION, Call, Message, Outbox, new_sid
from sandbox.player import Player

log = logging.getLogger("sandbox")

_RESOURCE = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>AC[0-9a-fA-F]{{32}})/"
    r"(?P<kind>Messages|Calls)(?:/(?P<sid>(SM|MM|CA)[0-9a-f]{32}))?\.json$"
)
# Twilio's documented magic test numbers, as Twilio answers them.
_BAD_TO = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable."),
    "+15005550003": (
        21408,
        "Permission to send to the region indicated by the 'To' number is not enabled.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient."),
}
_NOT_SMS_CAPABLE = {"+15005550009": (21614, "'To' number is not a valid mobile number.")}
_BAD_FROM = {
    "+15005550001": (21212, "The 'From' number +15005550001 is not a valid phone number."),
}


@dataclass(frozen=True)
class Account:
    """Whose Twilio this sandbox plays: the credentials the app must present."""

    sid: str
    auth_token: str
    api_key_sid: str | None = None
    api_key_secret: str | None = None

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


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


class Sandbox:
    """The running sandbox: server, outbox and player."""

    def __init__(
        self, account: Account, *, host: str = "127.0.0.1", port: int = 0, step_seconds: float = 0.2
    ) -> None:
        self.account = account
        self.host = host
        self.outbox = Outbox()
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        self.player = Player(
            self.outbox,
            account.sid,
            account.auth_token,
            origin=self.url,
            step_seconds=step_seconds,
            on_message=self._start_delivery,
        )
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_port}"

    def start(self) -> Sandbox:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- REST --------------------------------------------------------------------------

    def create_message(self, form: dict[str, list[str]]) -> Message:
        to, from_ = _one(form, "To"), _one(form, "From")
        service = _one(form, "MessagingServiceSid")
        body, media = _one(form, "Body") or "", form.get("MediaUrl", [])
        if not to:
            raise ApiError(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            raise ApiError(400, 21603, "A 'From' phone number is required.")
        if not body and not media:
            raise ApiError(400, 21602, "Message body is required.")
        if len(body) > 1600:
            raise ApiError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        _check_numbers(to, from_, sms=True)
        message = Message(
            sid=new_sid("MM" if media else "SM"),
            account_sid=self.account.sid,
            to=to,
            from_=from_,
            body=body,
            messaging_service_sid=service,
            media_urls=media,
            status_callback=_one(form, "StatusCallback"),
        )
        self.outbox.add_message(message)
        self._start_delivery(message)
        return message

    def create_call(self, form: dict[str, list[str]]) -> Call:
        to, from_, url = _one(form, "To"), _one(form, "From"), _one(form, "Url")
        if not to:
            raise ApiError(400, 21201, "No 'To' number is specified.")
        if not from_:
            raise ApiError(400, 21213, "No 'From' number is specified.")
        if not url:
            raise ApiError(400, 21205, "Url parameter is required.")
        _check_numbers(to, from_, sms=False)
        call = Call(
            sid=new_sid("CA"),
            account_sid=self.account.sid,
            to=to,
            from_=from_,
            url=url,
            method=(_one(form, "Method") or "POST").upper(),
            status_callback=_one(form, "StatusCallback"),
            status_callback_events=set(form.get("StatusCallbackEvent", [])),
            time_limit=int(_one(form, "TimeLimit") or 14_400),
        )
        self.outbox.add_call(call)
        self.outbox.move(call, "queued")
        threading.Thread(target=self.player.run_call, args=(call,), daemon=True).start()
        return call

    def _start_delivery(self, message: Message) -> None:
        threading.Thread(target=self.player.deliver, args=(message,), daemon=True).start()


def _check_numbers(to: str, from_: str | None, *, sms: bool) -> None:
    if from_ in _BAD_FROM:
        raise ApiError(400, *_BAD_FROM[from_])
    if to in _BAD_TO:
        raise ApiError(400, *_BAD_TO[to])
    if sms and to in _NOT_SMS_CAPABLE:
        raise ApiError(400, *_NOT_SMS_CAPABLE[to])


def _one(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


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
            elif path.startswith("/recordings/"):
                self._send(200, b"", "audio/mpeg")
            else:
                self._rest("GET")

        def do_POST(self) -> None:
            if urlsplit(self.path).path == "/sandbox/key-presses":
                data = json.loads(self._body() or b"{}")
                with sandbox.outbox.lock:
                    sandbox.outbox.key_presses[str(data["to"])] = [str(d) for d in data["digits"]]
                self._json(204, None)
            else:
                self._rest("POST")

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
                self._json(*_route(sandbox, method, match, parts.query, self._body()))
            except ApiError as error:
                self._json(error.status, error.body())

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _json(self, status: int, payload: object) -> None:
            body = b"" if payload is None else json.dumps(payload).encode()
            self._send(status, body, "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # request lines carry numbers in query strings

    return Handler


def _route(
    sandbox: Sandbox, method: str, match: re.Match[str], query: str, body: bytes
) -> tuple[int, object]:
    kind, sid = match["kind"], match["sid"]
    store: dict[str, Any] = sandbox.outbox.messages if kind == "Messages" else sandbox.outbox.calls
    if sid:
        if method != "GET" or sid not in store:
            raise ApiError(404, 20404, f"The requested resource {sid} was not found.")
        return 200, store[sid].to_json()
    if method == "POST":
        form = parse_qs(body.decode(), keep_blank_values=True)
        created = sandbox.create_message(form) if kind == "Messages" else sandbox.create_call(form)
        return 201, created.to_json()
    filters = parse_qs(query)
    listed = [
        resource.to_json()
        for resource in reversed(list(store.values()))
        if all(
            getattr(resource, attr) == filters[param][0]
            for param, attr in (("To", "to"), ("From", "from_"))
            if param in filters
        )
    ]
    page_size = int(filters.get("PageSize", ["50"])[0])
    key = "messages" if kind == "Messages" else "calls"
    return 200, {key: listed[:page_size], "next_page_uri": None, "page": 0, "page_size": page_size}
