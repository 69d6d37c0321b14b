"""Answering what reaches the app's Twilio number: inbound calls and inbound SMS.

A call or text for a user (see `conversations.recipient`) reaches that user. Anything else
is kept in the inbox first, once per Twilio event (a replayed webhook changes nothing). A
call is then answered with INCOMING_CALL_FLOW; a message with INCOMING_SMS_REPLY, unless it
is a replay, a sender outside the destination policy, or one the limits refuse: an auto-reply
is a send like any other, counted against the sender's hourly limit and the app's daily cap,
so strangers cannot turn the number into an SMS pump. Opt-out, opt-in and help keywords are
never routed nor auto-replied: they record or clear an opt-out (`api.stores.opt_outs`), and
HELP gets INCOMING_HELP_REPLY when it is set.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlencode

from twilio.twiml.messaging_response import MessagingResponse

from api.core.call_twiml import (
    build_hangup_twiml,
    build_leave_message_twiml,
    build_ring_user_twiml,
    say_and_hang_up,
)
from api.core.errors import AhoyError
from api.core.phone import DestinationPolicy, mask, parse_e164
from api.core.sealing import SealRejected, seal, unseal
from api.core.settings import get_settings
from api.core.urls import webhook_url
from api.services.call_flows import render_twiml
from api.stores import conversations, identities, limits, opt_outs, recordings
from api.stores.inbox import store_inbound_call, store_inbound_sms

log = logging.getLogger("ahoy.inbound")

_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
_CALL_SID = re.compile(r"^CA[0-9a-f]{32}$")
RING_SECONDS = 20  # how long a user's app rings before the voicemail
VOICEMAIL_SECONDS = 120
STEP_SECONDS = 3600  # a ringing call's steps: well past any voicemail
VOICEMAIL_PROMPT = "Nobody can take your call. Please leave a message after the beep."
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")

# What carriers and Twilio treat as opt-out, opt-in and help (Twilio's advanced opt-out).
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
KEYWORDS = OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS


def answer_incoming_call(query: Sequence[tuple[str, str]], call: Mapping[str, str]) -> str:
    """A call for a user (the line is pinned to them, or they last wrote to or called the
    caller within CONVERSATION_DAYS) rings their app, then takes a voicemail into their
    conversation if nobody answers. Any other call is kept in the inbox and answered with
    INCOMING_CALL_FLOW (default: voicemail). `query` carries the steps of a ringing call."""
    steps = dict(query)
    if "step" in steps:
        return _ringing_step(steps, call)
    owner = _recipient(call, call.get("CallSid", ""), _CALL_SID)
    if owner is None:
        store_inbound_call(call)  # a replay is answered the same way, and kept once
        flow = parse_qsl(get_settings().incoming_call_flow, keep_blank_values=True)
        return render_twiml(flow, call)
    log.info("call from %s rings its user", mask(call["From"]))
    return build_ring_user_twiml(
        identities.identity_for(owner),
        caller=call["From"],
        timeout=RING_SECONDS,
        action=_step_url("rung", owner),
    )


def _ringing_step(steps: Mapping[str, str], call: Mapping[str, str]) -> str:
    """After the user's app rang (`rung`): done if answered, else voicemail; after the
    voicemail (`voicemail`): into the user's conversation, its recording theirs alone."""
    settings = get_settings()
    try:
        owner = unseal(steps.get("user", ""), key=settings.flow_key.get()).caller
    except SealRejected:
        log.warning("a ringing step with a user Ahoy did not seal: hung up")
        return build_hangup_twiml()
    step = steps["step"]
    if step == "rung":
        if call.get("DialCallStatus") == "completed":
            return build_hangup_twiml()
        return build_leave_message_twiml(
            VOICEMAIL_PROMPT, action=_step_url("voicemail", owner), max_seconds=VOICEMAIL_SECONDS
        )
    if step == "voicemail":
        sid, sender = call.get("RecordingSid", ""), call.get("From", "")
        recordings.keep(sid, owner, dict(call))
        seconds = call.get("RecordingDuration", "")
        body = f"Voicemail ({seconds} s)" if seconds.isdigit() else "Voicemail"
        if _E164.match(sender):
            conversations.add(owner, sender, conversations.Message(sid, "in", body, sid))
        return say_and_hang_up("Thank you. Goodbye.")
    return build_hangup_twiml()


def _step_url(step: str, owner: str) -> str:
    """The next step's URL on /api/incomingCall, the user sealed (not readable, not
    alterable: Twilio's signature covers the URL, the seal covers who it is for)."""
    settings = get_settings()
    sealed = seal([], caller=owner, ttl_seconds=STEP_SECONDS, key=settings.flow_key.get())
    return webhook_url(settings, f"/api/incomingCall?{urlencode({'step': step, 'user': sealed})}")


def _recipient(event: Mapping[str, str], sid: str, shape: re.Pattern[str]) -> str | None:
    """The user an inbound call or SMS is for (see `conversations.recipient`), if any."""
    sender, line = event.get("From", ""), event.get("To", "")
    if not shape.match(sid) or not _E164.match(sender):
        return None  # the inbox checks and refuses what is malformed
    return conversations.recipient(line, sender, get_settings().conversation_days)


def answer_incoming_sms(message: Mapping[str, str]) -> str:
    """A reply to a user who wrote to the sender goes to that user's thread, and is not
    answered. Anything else is kept in the inbox and auto-replied INCOMING_SMS_REPLY when that
    is a send Ahoy may make. Keywords are never routed: carriers' rules, not a user's."""
    body = message.get("Body", "")
    sid = message.get("MessageSid", "")
    keyword = keyword_of(body)
    if keyword is not None:
        return _answer_keyword(keyword, message)
    owner = _recipient(message, sid, _MESSAGE_SID)
    if owner is not None:
        added = conversations.add(
            owner, message["From"], conversations.Message(message["MessageSid"], "in", body)
        )
        log.info("reply from %s %s", mask(message["From"]), "routed" if added else "seen before")
        return str(MessagingResponse().to_xml())
    first_time = store_inbound_sms(message)
    reply = get_settings().incoming_sms_reply
    response = MessagingResponse()
    if reply and first_time and _may_reply_to(message.get("From", "")):
        response.message(reply)
    return str(response.to_xml())


def _answer_keyword(keyword: str, message: Mapping[str, str]) -> str:
    """Kept in the inbox, never routed. STOP-family words record an opt-out and START-family
    words clear it (Twilio answers both itself, with its own confirmation); HELP-family words
    get INCOMING_HELP_REPLY when it is set, else Twilio's own answer."""
    first_time = store_inbound_sms(message)
    sender = message.get("From", "")
    if first_time and _E164.match(sender):
        if keyword in OPT_OUT_WORDS:
            opt_outs.mark(sender, keyword)
        elif keyword in OPT_IN_WORDS:
            opt_outs.clear(sender)
    response = MessagingResponse()
    help_reply = get_settings().incoming_help_reply
    if keyword in HELP_WORDS and help_reply and first_time:
        response.message(help_reply)
    return str(response.to_xml())


def is_keyword(body: str) -> bool:
    """True for a keyword in any case, fullwidth form, spacing or punctuation (`Stop.`)."""
    return keyword_of(body) is not None


def keyword_of(body: str) -> str | None:
    """The keyword `body` is, in any case, fullwidth form, spacing or punctuation (`Stop.`)."""
    folded = unicodedata.normalize("NFKC", body).strip()
    word = "".join(c for c in folded if not unicodedata.category(c).startswith(("P", "Z", "S")))
    return word.upper() if word.upper() in KEYWORDS else None


def _may_reply_to(sender: str) -> bool:
    settings = get_settings()
    try:
        number = parse_e164(sender)
        DestinationPolicy.from_settings(settings).check(number)
        limits.consume(None, number, settings)  # the sender's hour and the app's day
    except (ValueError, AhoyError) as refused:
        reason = refused.slug if isinstance(refused, AhoyError) else "not a number"
        log.info("no auto-reply to %s: %s", mask(sender), reason)
        return False
    return True
