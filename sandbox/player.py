"""Plays calls and delivers messages as Twilio would, with signed callbacks to the app.

A call fetches its Url, interprets the TwiML (Say, Play, Pause, Gather, Dial, Record,
Redirect, Hangup, Reject, Message/Sms, and the nouns they nest) and follows action and Redirect
URLs up to a bound, writing what the callee would hear to the call's transcript. TwiML that
Twilio would reject ends the call with Twilio's error code, in the transcript too.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

from sandbox.outbox import API_VERSION, Call, Message, Outbox, new_sid, twilio_date
from sandbox.webhooks import NotLoopback, signed_request

log = logging.getLogger("sandbox")

MAX_DOCUMENTS = 20  # Twilio gives up on endless redirect loops too
_NESTABLE = {
    "Gather": {"Say", "Play", "Pause"},
    "Dial": {"Number", "Client", "Sip", "Conference", "Queue"},
}
_LEAVES = {"Say", "Play", "Pause", "Hangup", "Reject", "Redirect", "Message", "Sms", "Record"}


class ApplicationError(Exception):
    """What Twilio reports as an application error: its code and a short reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass
class Next:
    """The next TwiML document to fetch, and what to post with it."""

    url: str
    method: str = "POST"
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Ended:
    status: str = "completed"


@dataclass
class Player:
    outbox: Outbox
    account_sid: str
    auth_token: str
    origin: str  # the sandbox's own origin, for fake recording URLs
    step_seconds: float = 0.2
    on_message: Callable[[Message], None] | None = None

    # --- messages ----------------------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """queued → sent → delivered, each change posted to the StatusCallback."""
        for status in ("sent", "delivered"):
            time.sleep(self.step_seconds)
            self.outbox.move(message, status)
            if message.status_callback:
                self._post(
                    message.status_callback,
                    {
                        "MessageSid": message.sid,
                        "SmsSid": message.sid,
                        "AccountSid": self.account_sid,
                        "From": message.from_ or "",
                        "To": message.to,
                        "MessageStatus": status,
                        "SmsStatus": status,
                        "ApiVersion": API_VERSION,
                    },
                )

    # --- calls -------------------------------------------------------------------------

    def run_call(self, call: Call) -> None:
        started = time.monotonic()
        sequence = 0
        for status, event in (("initiated", "initiated"), ("ringing", "ringing")):
            time.sleep(self.step_seconds / 2)
            self.outbox.move(call, status)
            sequence = self._call_event(call, status, event, sequence)
        self.outbox.move(call, "in-progress")
        sequence = self._call_event(call, "in-progress", "answered", sequence)
        outcome = self._converse(call)
        call.duration = max(1, round(time.monotonic() - started + call.duration))
        self.outbox.move(call, outcome.status)
        self._call_event(call, outcome.status, "completed", sequence)

    def _converse(self, call: Call) -> Ended:
        step: Next | Ended = Next(call.url, call.method)
        documents = 0
        try:
            while isinstance(step, Next):
                documents += 1
                if documents > MAX_DOCUMENTS:
                    raise ApplicationError(11100, f"more than {MAX_DOCUMENTS} TwiML documents")
                step = self._play(call, self._fetch(call, step), step.url)
        except ApplicationError as error:
            call.transcript.append(f"Application error {error.code}: {error.reason}")
            call.transcript.append("Say: We are sorry, an application error has occurred. Goodbye.")
            return Ended("completed")
        return step

    def _fetch(self, call: Call, step: Next) -> ET.Element:
        params = {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "ApiVersion": API_VERSION,
            **step.params,
        }
        try:
            answer = signed_request(step.url, params, self.auth_token, step.method)
        except NotLoopback as refused:
            raise ApplicationError(
                11200, f"the sandbox only fetches loopback URLs ({refused})"
            ) from None
        if answer.status == 0:
            raise ApplicationError(11205, f"no answer from {step.url}")
        if not 200 <= answer.status < 300:
            raise ApplicationError(11200, f"HTTP {answer.status} from {step.url}")
        content_type = answer.content_type.split(";")[0].strip().lower()
        if content_type not in ("text/xml", "application/xml"):
            raise ApplicationError(12300, f"invalid Content-Type {content_type or '(none)'}")
        try:
            root = ET.fromstring(answer.body)  # noqa: S314  # the app's own TwiML, on loopback
        except ET.ParseError:
            raise ApplicationError(12100, "the document is not valid XML") from None
        if root.tag != "Response":
            raise ApplicationError(12100, f"the root element is <{root.tag}>, not <Response>")
        return root

    def _play(self, call: Call, root: ET.Element, url: str) -> Next | Ended:
        for verb in root:
            step = self._verb(call, verb, url)
            if isinstance(step, Next):
                step.url = urljoin(url, step.url)  # Twilio resolves relative URLs like a browser
            if step is not None:
                return step
        return Ended()

    def _verb(self, call: Call, verb: ET.Element, url: str) -> Next | Ended | None:
        tag = verb.tag
        allowed_children = _NESTABLE.get(tag, set())
        for child in verb:
            if child.tag not in allowed_children:
                raise ApplicationError(12100, f"<{child.tag}> cannot be nested in <{tag}>")
        if tag not in _LEAVES and tag not in _NESTABLE:
            raise ApplicationError(12100, f"<{tag}> is not a TwiML verb")
        text = (verb.text or "").strip()
        method = verb.get("method", "POST")
        if tag == "Say":
            loop = int(verb.get("loop", "1") or 1)
            call.transcript.append(f"Say: {text}" + (f" (x{loop})" if loop != 1 else ""))
        elif tag == "Play":
            call.transcript.append(f"Play: {text}")
        elif tag == "Pause":
            length = int(verb.get("length", "1"))
            call.transcript.append(f"Pause: {length} s")
            call.duration += length
        elif tag == "Gather":
            for child in verb:
                self._verb(call, child, url)
            digits = self.outbox.next_key_press(call.to)
            if digits is None:
                call.transcript.append("Gather: no input")
                return None
            call.transcript.append(f"Gather: callee pressed {digits}")
            return Next(verb.get("action") or url, method, {"Digits": digits})
        elif tag == "Dial":
            targets = [f"{c.tag} {(c.text or '').strip()}" for c in verb] or [f"Number {text}"]
            caller_id = verb.get("callerId")
            call.transcript.append(
                f"Dial: {', '.join(targets)}" + (f" (caller id {caller_id})" if caller_id else "")
            )
            if verb.get("action"):
                return Next(
                    verb.get("action", ""),
                    method,
                    {
                        "DialCallStatus": "completed",
                        "DialCallSid": new_sid("CA"),
                        "DialCallDuration": "5",
                    },
                )
        elif tag == "Record":
            recording = new_sid("RE")
            call.transcript.append("Record: the callee leaves a message")
            transcribe_to = verb.get("transcribeCallback")
            if transcribe_to:
                self._post(
                    transcribe_to,
                    {
                        "CallSid": call.sid,
                        "AccountSid": self.account_sid,
                        "RecordingSid": recording,
                        "RecordingUrl": f"{self.origin}/recordings/{recording}",
                        "TranscriptionSid": new_sid("TR"),
                        "TranscriptionText": "This is a sandbox transcription.",
                        "TranscriptionStatus": "completed",
                    },
                )
            return Next(
                verb.get("action") or url,
                method,
                {
                    "RecordingSid": recording,
                    "RecordingUrl": f"{self.origin}/recordings/{recording}",
                    "RecordingDuration": "3",
                    "Digits": "hangup",
                },
            )
        elif tag == "Redirect":
            call.transcript.append(f"Redirect: {text}")
            return Next(text, method)
        elif tag == "Hangup":
            call.transcript.append("Hangup")
            return Ended()
        elif tag == "Reject":
            reason = verb.get("reason", "rejected")
            call.transcript.append(f"Reject: {reason}")
            return Ended("busy" if reason == "busy" else "no-answer")
        elif tag in ("Message", "Sms"):
            to = verb.get("to") or call.to
            call.transcript.append(f"SMS to {to}: {text}")
            message = Message(
                sid=new_sid("SM"),
                account_sid=self.account_sid,
                to=to,
                from_=verb.get("from") or call.from_,
                body=text,
                messaging_service_sid=None,
                media_urls=[],
                status_callback=verb.get("statusCallback"),
            )
            self.outbox.add_message(message)
            if self.on_message is not None:
                self.on_message(message)
        return None

    def _call_event(self, call: Call, status: str, event: str, sequence: int) -> int:
        if call.status_callback and (event == "completed" or event in call.status_callback_events):
            params = {
                "CallSid": call.sid,
                "AccountSid": self.account_sid,
                "From": call.from_,
                "To": call.to,
                "CallStatus": status,
                "Direction": "outbound-api",
                "ApiVersion": API_VERSION,
                "SequenceNumber": str(sequence),
                "Timestamp": twilio_date(datetime.now(UTC)),
                "CallbackSource": "call-progress-events",
            }
            if event == "completed":
                params["CallDuration"] = str(call.duration)
            self._post(call.status_callback, params)
            return sequence + 1
        return sequence

    def _post(self, url: str, params: dict[str, str]) -> None:
        try:
            answer = signed_request(url, params, self.auth_token)
        except NotLoopback:
            log.warning("callback not sent: the sandbox only posts to loopback URLs")
            return
        if not 200 <= answer.status < 300:
            log.warning("callback answered HTTP %s", answer.status)
