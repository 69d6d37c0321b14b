"""Answering what reaches the app's Twilio number: inbound calls and inbound SMS.

Each is kept in the inbox first; a call is then answered with INCOMING_CALL_FLOW, a message
with INCOMING_SMS_REPLY (or nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from twilio.twiml.messaging_response import MessagingResponse

from api.call_flows import render_twiml
from api.inbox import store_inbound_call, store_inbound_sms
from api.settings import get_settings

# Twilio answers these itself (opt-out and help); an auto-reply of ours would be wrong.
_KEYWORDS = {
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "START",
    "YES",
    "UNSTOP",
    "HELP",
    "INFO",
}


def answer_incoming_call(call: Mapping[str, str]) -> str:
    """Record the call, then answer it with INCOMING_CALL_FLOW (default: voicemail)."""
    store_inbound_call(call)
    flow = parse_qsl(get_settings().incoming_call_flow, keep_blank_values=True)
    return render_twiml(flow, call)


def answer_incoming_sms(message: Mapping[str, str]) -> str:
    """Record the message; auto-reply INCOMING_SMS_REPLY unless it is empty or a keyword."""
    store_inbound_sms(message)
    reply = get_settings().incoming_sms_reply
    response = MessagingResponse()
    if reply and message.get("Body", "").strip().upper() not in _KEYWORDS:
        response.message(reply)
    return str(response.to_xml())
