"""Answering what reaches the app's Twilio number: inbound calls and inbound SMS.

Each is kept in the inbox first, once per Twilio event (a replayed webhook changes nothing).
A call is then answered with INCOMING_CALL_FLOW; a message with INCOMING_SMS_REPLY, unless it
is an opt-out, opt-in or help keyword (Twilio and the carriers answer those), a replay, a
sender outside the destination policy, or one the limits refuse: an auto-reply is a send like
any other, counted against the sender's hourly limit and the app's daily cap, so strangers
cannot turn the number into an SMS pump.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import parse_qsl

from twilio.twiml.messaging_response import MessagingResponse

from api.core.errors import AhoyError
from api.core.phone import DestinationPolicy, mask, parse_e164
from api.core.settings import get_settings
from api.services.call_flows import render_twiml
from api.stores import conversations, limits
from api.stores.inbox import store_inbound_call, store_inbound_sms

log = logging.getLogger("ahoy.inbound")

_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")

# What carriers and Twilio treat as opt-out, opt-in and help (Twilio's advanced opt-out).
KEYWORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "OPTOUT",
        "REVOKE",
        "START",
        "UNSTOP",
        "YES",
        "HELP",
        "INFO",
    }
)


def answer_incoming_call(call: Mapping[str, str]) -> str:
    """Record the call, then answer it with INCOMING_CALL_FLOW (default: voicemail)."""
    store_inbound_call(call)  # a replay is answered the same way, and kept once
    flow = parse_qsl(get_settings().incoming_call_flow, keep_blank_values=True)
    return render_twiml(flow, call)


def answer_incoming_sms(message: Mapping[str, str]) -> str:
    """A reply to a user who wrote to the sender goes to that user's thread, and is not
    answered. Anything else is kept in the inbox and auto-replied INCOMING_SMS_REPLY when that
    is a send Ahoy may make. Keywords are never routed: carriers' rules, not a user's."""
    body = message.get("Body", "")
    owner = None if is_keyword(body) else _conversation_owner(message)
    if owner is not None:
        added = conversations.add(
            owner, message["From"], conversations.Message(message["MessageSid"], "in", body)
        )
        log.info("reply from %s %s", mask(message["From"]), "routed" if added else "seen before")
        return str(MessagingResponse().to_xml())
    first_time = store_inbound_sms(message)
    reply = get_settings().incoming_sms_reply
    response = MessagingResponse()
    if (
        reply
        and first_time
        and not is_keyword(message.get("Body", ""))
        and _may_reply_to(message.get("From", ""))
    ):
        response.message(reply)
    return str(response.to_xml())


def _conversation_owner(message: Mapping[str, str]) -> str | None:
    """The user the sender is replying to: the last who wrote to it within CONVERSATION_DAYS."""
    sender = message.get("From", "")
    if not _MESSAGE_SID.match(message.get("MessageSid", "")) or not _E164.match(sender):
        return None  # the inbox checks and refuses what is malformed
    return conversations.owner_of(sender, get_settings().conversation_days)


def is_keyword(body: str) -> bool:
    """True for a keyword in any case, fullwidth form, spacing or punctuation (`Stop.`)."""
    folded = unicodedata.normalize("NFKC", body).strip()
    word = "".join(c for c in folded if not unicodedata.category(c).startswith(("P", "Z", "S")))
    return word.upper() in KEYWORDS


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
