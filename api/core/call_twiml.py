"""TwiML documents for calls, built only with twilio's VoiceResponse (it escapes markup).

Flows use the parameter names of Twilio's "message" Twimlet: `Message[0]`, `Message[1]`, …
(each text is spoken, each https URL is played), `Pause[n]` (seconds after item n), `Voice`,
`Language` and `Loop`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from twilio.twiml.voice_response import VoiceResponse

from api.core.text import ascii_int
from api.core.urls import is_public_https_url

# What XML 1.0 cannot carry (VoiceResponse would write it anyway), plus DEL.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_INDEXED = re.compile(r"^(Message|Pause)\[([0-9]{1,2})\]$")
_VOICE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")
APP_USER_IDENTITY = re.compile(r"^[A-Za-z0-9_]{1,121}$")  # what Twilio takes as a client identity
MAX_ITEM_CHARS = 1000
MAX_ITEMS = 20
APOLOGY = "Sorry, this call cannot be completed. Goodbye."


class InvalidFlow(ValueError):
    """The flow's parameters cannot be rendered; the reason is safe to log."""


@dataclass(frozen=True)
class MessageFlow:
    """What a "message" flow says or plays, in order."""

    items: tuple[str, ...]
    voice: str | None = None
    language: str | None = None
    loop: int = 1
    pauses: tuple[int, ...] = ()  # seconds after each item, 0 for none


def message_params(
    items: Iterable[str], *, voice: str | None, language: str | None, loop: int
) -> list[tuple[str, str]]:
    """The Twimlets parameters of a message flow (what makeCall seals)."""
    params = [(f"Message[{index}]", item) for index, item in enumerate(items)]
    params += [(name, value) for name, value in (("Voice", voice), ("Language", language)) if value]
    if loop != 1:
        params.append(("Loop", str(loop)))
    return params


def parse_message_flow(params: Iterable[tuple[str, str]]) -> MessageFlow:
    """Read Twimlets "message" parameters; unknown names are ignored, as Twimlets does."""
    indexed: dict[int, str] = {}
    pauses: dict[int, int] = {}
    voice = language = None
    loop = 1
    for name, value in params:
        match = _INDEXED.match(name)
        if match and match.group(1) == "Pause":
            pauses[int(match.group(2))] = bounded(value, 1, 60, "Pause")
        elif match:
            indexed[int(match.group(2))] = value
        elif name == "Message":
            indexed.setdefault(0, value)
        elif name == "Voice":
            if not _VOICE.match(value):
                raise InvalidFlow("Voice is not a voice name")
            voice = value
        elif name == "Language":
            if not _LANGUAGE.match(value):
                raise InvalidFlow("Language is not a language tag")
            language = value
        elif name == "Loop":
            loop = bounded(value, 1, 10, "Loop")  # Twilio takes 0 as forever
    if len(indexed) > MAX_ITEMS:
        raise InvalidFlow("too many Message items")
    items: list[str] = []
    kept_pauses: list[int] = []
    for index in sorted(indexed):
        item = clean_text(indexed[index])
        if len(item) > MAX_ITEM_CHARS:
            raise InvalidFlow("too long a Message item")
        if item:  # an empty item says nothing, and its pause goes with it
            items.append(item)
            kept_pauses.append(pauses.get(index, 0))
    return MessageFlow(tuple(items), voice, language, loop, tuple(kept_pauses))


def bounded(value: str, low: int, high: int, name: str) -> int:
    """An integer flow parameter within [low, high], or InvalidFlow naming it."""
    number = ascii_int(value)
    if number is None or not low <= number <= high:
        raise InvalidFlow(f"{name} must be {low} to {high}")
    return number


def as_xml(response: VoiceResponse) -> str:
    """The TwiML document `response` describes."""
    return str(response.to_xml())


def say_and_hang_up(text: str) -> str:
    """Say `text`, then end the call."""
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return as_xml(response)


def build_message_twiml(flow: MessageFlow) -> str:
    response = VoiceResponse()
    add_message(response, flow)
    return as_xml(response)


def add_message(response: VoiceResponse, flow: MessageFlow) -> None:
    for index, item in enumerate(flow.items):
        if item.lower().startswith("https://"):
            if not is_public_https_url(item):
                raise InvalidFlow("a Message URL is not https on a public host")
            response.play(item)
        else:
            response.say(item, voice=flow.voice, language=flow.language, loop=_loop(flow.loop))
        if index < len(flow.pauses) and flow.pauses[index]:
            response.pause(length=flow.pauses[index])


def build_client_dial_twiml(identity: str) -> str:
    """Ring an app user's Voice SDK client."""
    response = VoiceResponse()
    response.dial(answer_on_bridge=True).client(identity)
    return as_xml(response)


def build_user_dial_twiml(
    identity: str, *, caller_name: str, caller_id: str, status_callback: str
) -> str:
    """Ring an app user's client, telling their app who calls (custom parameters)."""
    response = VoiceResponse()
    client = response.dial(answer_on_bridge=True).client(
        status_callback=status_callback,
        status_callback_event="initiated ringing answered completed",
        status_callback_method="POST",
    )
    client.identity(identity)
    client.parameter(name="callerName", value=caller_name)
    client.parameter(name="callerId", value=caller_id)
    return as_xml(response)


def build_ring_user_twiml(identity: str, *, caller: str, timeout: int, action: str) -> str:
    """An inbound call ringing the app user it is for; `action` hears how it ended."""
    response = VoiceResponse()
    client = response.dial(answer_on_bridge=True, timeout=timeout, action=action).client()
    client.identity(identity)
    client.parameter(name="callerName", value=caller)
    return as_xml(response)


def build_leave_message_twiml(prompt: str, *, action: str, max_seconds: int) -> str:
    """Voicemail: a prompt, the beep, a recording posted to `action`."""
    response = VoiceResponse()
    response.say(prompt)
    response.record(action=action, max_length=max_seconds, play_beep=True, timeout=5)
    response.say("No message was recorded. Goodbye.")
    return as_xml(response)


def build_number_dial_twiml(number: str, *, caller_id: str, status_callback: str) -> str:
    """Dial a phone number (already through the destination policy) with progress callbacks."""
    response = VoiceResponse()
    response.dial(caller_id=caller_id, answer_on_bridge=True).number(
        number,
        status_callback=status_callback,
        status_callback_event="initiated ringing answered completed",
        status_callback_method="POST",
    )
    return as_xml(response)


def build_hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return as_xml(response)


def build_apology_twiml() -> str:
    """Spoken instead of Twilio's own "application error" when a flow cannot be rendered."""
    return say_and_hang_up(APOLOGY)


def clean_text(text: str) -> str:
    return _NOT_XML.sub("", text).strip()


def _loop(loop: int) -> int | None:
    return loop if loop != 1 else None
