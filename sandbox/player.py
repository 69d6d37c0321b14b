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

from sandbox.outbox import API_VERSION, Call, Message, Outbox, Recording, new_sid, now, twilio_date
from sandbox.webhooks import NotLoopback, Signer, signed_request

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
    """The next TwiML document: fetched from `url` (with `params`), or given as `twiml`."""

    url: str
    method: str = "POST"
    params: dict[str, str] = field(default_factory=dict)
    twiml: str | None = None


@dataclass
class Ended:
    status: str = "completed"


class HungUp(Exception):
    """UpdateCall ended the call (Status=completed or canceled)."""


class Redirected(Exception):
    """UpdateCall gave the live call a new document (Url or Twiml)."""

    def __init__(self, step: Next) -> None:
        super().__init__(step.url)
        self.step = step


# Twilio's delivery error codes a fate may carry (messages), with Twilio's error messages.
MESSAGE_ERRORS = {
    None: None,
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30034: "Message from an unregistered number",
}


RECORDED_SECONDS = 3  # how long every message left on a <Record> is


def _target(noun: ET.Element) -> str:
    """Who a <Dial> noun calls: its text, or a <Client>'s <Identity>."""
    identity = noun.findtext("Identity")
    return (identity if identity is not None else noun.text or "").strip()


@dataclass
class Player:
    outbox: Outbox
    account_sid: str
    signer: Signer
    origin: str  # the sandbox's own origin, for fake recording URLs
    step_seconds: float = 0.2
    service_sender: str = "+15005550006"  # the number a Messaging Service sends from
    on_message: Callable[[Message], None] | None = None

    # --- messages ----------------------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """(accepted →) queued → sending → sent → delivered, or the fate set for its number:
        `failed` (never sent) or `undelivered` (sent, the carrier gave up), with its code.
        Each change from `sent` on, and a failure, is posted to the StatusCallback."""
        fate = self.outbox.next_fate("message", message.to)
        if message.status == "accepted":  # a Messaging Service picks the sender
            time.sleep(self.step_seconds / 2)
            with self.outbox.lock:
                message.from_ = self.service_sender
            self.outbox.move(message, "queued")
        if fate is not None and fate.status == "failed":
            self._message_moves(message, ["failed"], fate.error_code)
            return
        time.sleep(self.step_seconds / 2)
        self.outbox.move(message, "sending")
        with self.outbox.lock:
            message.sent = now()
        ending = "delivered" if fate is None else fate.status
        self._message_moves(message, ["sent", ending], fate.error_code if fate else None)

    def _message_moves(self, message: Message, statuses: list[str], code: int | None) -> None:
        for status in statuses:
            time.sleep(self.step_seconds)
            failed = status in ("failed", "undelivered")
            if failed:
                with self.outbox.lock:
                    message.error_code, message.error_message = code, MESSAGE_ERRORS.get(code)
            self.outbox.move(message, status)
            self.report(message, status, code if failed else None)

    def report(self, message: Message, status: str, code: int | None = None) -> None:
        """Post `status` to the message's StatusCallback, as Twilio does (with its ErrorCode
        when it failed)."""
        if not message.status_callback:
            return
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "AccountSid": self.account_sid,
            "From": message.from_ or "",
            "To": message.to,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": API_VERSION,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if code:
            params["ErrorCode"] = str(code)
        self._post(message.status_callback, params, message.status_callback_method)

    # --- calls -------------------------------------------------------------------------

    def run_call(self, call: Call) -> None:
        """queued → (initiated: dialled, `start_time`) → ringing → in-progress → completed, or
        the fate set for its number (`failed` once dialled, `busy` or `no-answer` after
        ringing), or canceled/completed early by UpdateCall. Callbacks as StatusCallbackEvent
        asks, `completed` always. `duration` counts from the answer, and is empty for calls
        never answered."""
        fate = self.outbox.next_fate("call", call.to)
        sequence = 0
        time.sleep(self.step_seconds / 2)
        outcome = Ended("canceled")
        if not call.hangup_requested:
            with self.outbox.lock:
                call.started = now()
            self.outbox.move(call, "initiated", shown=False)  # a Call resource never shows it
            sequence = self._call_event(call, "initiated", "initiated", sequence)
            if fate is not None and fate.status == "failed":
                outcome = Ended("failed")
            else:
                time.sleep(self.step_seconds / 2)
                if not call.hangup_requested:
                    self.outbox.move(call, "ringing")
                    sequence = self._call_event(call, "ringing", "ringing", sequence)
                    if fate is not None:
                        outcome = Ended(fate.status)
                    elif call.to.startswith("client:") and not self.outbox.next_client_answer(
                        call.to.removeprefix("client:")
                    ):
                        call.transcript.append(f"No answer from {call.to}")
                        outcome = Ended("no-answer")
                    else:
                        outcome, sequence = self._answer(call, sequence)
        with self.outbox.lock:
            call.ended = now() if call.started else None
            if outcome.status != "completed":
                call.duration = None
        self.outbox.move(call, outcome.status)
        self._call_event(call, outcome.status, "completed", sequence)

    def _answer(self, call: Call, sequence: int) -> tuple[Ended, int]:
        answered = time.monotonic()
        self.outbox.move(call, "in-progress")
        sequence = self._call_event(call, "in-progress", "answered", sequence)
        outcome = self._converse(call)
        with self.outbox.lock:
            call.duration = max(1, round(time.monotonic() - answered + call.paused))
        return outcome, sequence

    def _converse(self, call: Call) -> Ended:
        step: Next | Ended = Next(call.url or "", call.method, twiml=call.twiml)
        documents = 0
        try:
            while isinstance(step, Next):
                documents += 1
                if documents > MAX_DOCUMENTS:
                    raise ApplicationError(11100, f"more than {MAX_DOCUMENTS} TwiML documents")
                try:
                    step = self._play(call, self._document(call, step), step.url)
                except Redirected as redirected:
                    call.transcript.append("Redirected by the REST API")
                    step = redirected.step
        except HungUp:
            call.transcript.append("Hung up by the REST API")
            return Ended("completed")
        except ApplicationError as error:
            call.transcript.append(f"Application error {error.code}: {error.reason}")
            if call.fallback_url and documents == 1:  # the call's own TwiML failed: its fallback
                return self._fall_back(call, error, step)
            call.transcript.append("Say: We are sorry, an application error has occurred. Goodbye.")
            return Ended("completed")
        return step

    def _fall_back(self, call: Call, error: ApplicationError, failed: Next | Ended) -> Ended:
        """Twilio fetches the FallbackUrl with what failed (ErrorCode, ErrorUrl) and plays it."""
        url = call.fallback_url or ""
        failed_url = failed.url if isinstance(failed, Next) else ""
        params = {"ErrorCode": str(error.code), "ErrorUrl": failed_url}
        try:
            outcome = self._play(call, self._fetch(call, Next(url, "POST", params)), url)
        except ApplicationError as again:
            call.transcript.append(f"Application error {again.code}: {again.reason}")
            call.transcript.append("Say: We are sorry, an application error has occurred. Goodbye.")
            return Ended("completed")
        return outcome if isinstance(outcome, Ended) else Ended("completed")

    def _checkpoint(self, call: Call, seconds: float = 0) -> None:
        """Wait `seconds` of call time (scaled by step_seconds), or until UpdateCall acts."""
        if seconds:
            call.interrupt.wait(seconds * self.step_seconds)
        with self.outbox.lock:
            call.interrupt.clear()
            hangup, redirect, call.redirect = call.hangup_requested, call.redirect, None
        if hangup:
            raise HungUp
        if redirect is not None:
            url, twiml, method = redirect
            raise Redirected(Next(url or "", method, twiml=twiml))

    def _document(self, call: Call, step: Next) -> ET.Element:
        if step.twiml is None:
            return self._fetch(call, step)
        try:
            root = ET.fromstring(step.twiml)  # noqa: S314  # TwiML the app itself sent
        except ET.ParseError:
            raise ApplicationError(12100, "the Twiml parameter is not valid XML") from None
        if root.tag != "Response":
            raise ApplicationError(12100, f"the root element is <{root.tag}>, not <Response>")
        return root

    def _fetch(self, call: Call, step: Next) -> ET.Element:
        params = {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": "in-progress",
            "Direction": "inbound" if call.direction == "inbound" else "outbound-api",
            "ApiVersion": API_VERSION,
            **step.params,
        }
        try:
            answer = signed_request(step.url, params, self.signer, step.method)
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
            self._checkpoint(call)
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
            call.paused += length
            self._checkpoint(call, length)  # a pause takes call time: UpdateCall may act
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
            targets = [(c.tag, _target(c)) for c in verb] or [("Number", text)]
            caller_id = verb.get("callerId")
            parameters = [
                f"{p.get('name')}={p.get('value')}" for c in verb for p in c.iter("Parameter")
            ]
            call.transcript.append(
                f"Dial: {', '.join(f'{tag} {target}' for tag, target in targets)}"
                + (f" (caller id {caller_id})" if caller_id else "")
                + (f" with {', '.join(parameters)}" if parameters else "")
            )
            kind, target = targets[0]
            # An app identity answers or not, as /sandbox/clients says; a number answers.
            answered = kind != "Client" or self.outbox.next_client_answer(target)
            to = f"client:{target}" if kind == "Client" else target
            leg = self._child_call(call, to, caller_id or call.from_, answered=answered)
            if not answered:
                call.transcript.append(f"No answer from {to}")
            if verb.get("action"):
                return Next(
                    verb.get("action", ""),
                    method,
                    {
                        "DialCallStatus": leg.status,
                        "DialCallSid": leg.sid,
                        "DialCallDuration": str(leg.duration or 0),
                    },
                )
        elif tag == "Record":
            recording = new_sid("RE")
            call.transcript.append("Record: the callee leaves a message")
            with self.outbox.lock:
                self.outbox.recordings[recording] = Recording(
                    recording, self.account_sid, call.sid, RECORDED_SECONDS
                )
            # Twilio's media URL: its audio needs the account's credentials (basic auth).
            media = (
                f"{self.origin}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{recording}"
            )
            transcribe_to = verb.get("transcribeCallback")
            if transcribe_to:
                self._post(
                    transcribe_to,
                    {
                        "CallSid": call.sid,
                        "AccountSid": self.account_sid,
                        "RecordingSid": recording,
                        "RecordingUrl": media,
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
                    "RecordingUrl": media,
                    "RecordingDuration": str(RECORDED_SECONDS),
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
                direction="outbound-call",
            )
            self.outbox.add_message(message)
            if self.on_message is not None:
                self.on_message(message)
        return None

    def _child_call(self, parent: Call, to: str, from_: str, *, answered: bool = True) -> Call:
        """The leg a <Dial> places: a call of its own, with `parent_call_sid` (ListCall's
        ParentCallSid filter finds it)."""
        moment = now()
        child = Call(
            sid=new_sid("CA"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            url=None,
            twiml=None,
            method="POST",
            status_callback=None,
            status_callback_method="POST",
            status_callback_events=set(),
            time_limit=parent.time_limit,
            parent_call_sid=parent.sid,
            direction="outbound-dial",
            status="completed" if answered else "no-answer",
            duration=5 if answered else None,
            started=moment,
            ended=moment,
        )
        self.outbox.add_call(child)
        return child

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
                params["CallDuration"] = str(call.duration or 0)
            self._post(call.status_callback, params, call.status_callback_method)
            return sequence + 1
        return sequence

    def _post(self, url: str, params: dict[str, str], method: str = "POST") -> None:
        try:
            answer = signed_request(url, params, self.signer, method)
        except NotLoopback:
            log.warning("callback not sent: the sandbox only posts to loopback URLs")
            return
        if not 200 <= answer.status < 300:
            log.warning("callback answered HTTP %s", answer.status)
