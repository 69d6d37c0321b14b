"""Call flows: what /api/twiml and /api/flowStep answer, Twimlets-compatible.

A flow is chosen by the account owner (a URL in Twilio's console, INCOMING_CALL_FLOW) or
sealed by makeCall; app callers never choose one. `mode` selects it (default `message`):
message, forward, simulring, findme, menu, voicemail, client, hangup, reject, pause.

Safety holds at render time: every number that would end up in a <Dial> passes the
destination policy now, whatever the flow says; every URL a flow redirects to passes the
TwiML URL rule (`api.core.urls`: ALLOWED_TWIML_HOSTS, or this app's own /api/twiml). Anything
invalid or refused is spoken as a short apology and hung up (logged, masked), never a 500
and never the dial.

Steps that need a callback (a Gather's digits, a Dial's result, a recording) go to
/api/flowStep with the flow's own parameters carried along (sealed flows stay sealed), so
rendering stays light and only the voicemail steps (`api.services.voicemail`) touch storage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from api.core.call_twiml import (
    APP_USER_IDENTITY,
    InvalidFlow,
    add_message,
    as_xml,
    bounded,
    build_apology_twiml,
    build_client_dial_twiml,
    build_hangup_twiml,
    clean_text,
    parse_message_flow,
    say_and_hang_up,
)
from api.core.sealing import SealRejected, unseal
from api.core.settings import Settings, get_settings
from api.core.text import ascii_int
from api.core.urls import is_allowed_twiml_url, webhook_url

log = logging.getLogger("ahoy.twiml")

MAX_NUMBERS = 5
MENU_ATTEMPTS = 3
ACCEPT_PROMPT = "You have a call. Press any key to accept it."
# Parameters the flow step route adds to a flow's own; never read as flow parameters.
_STEP_PARAMS = {"step", "i", "attempt"}


@dataclass(frozen=True)
class Flow:
    """A flow's parameters, and how they travel to its next step (sealed flows stay sealed)."""

    params: tuple[tuple[str, str], ...]
    sealed: str | None
    settings: Settings

    @property
    def carry(self) -> str:
        return urlencode({"flow": self.sealed} if self.sealed else self.params)

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.params:
            if key == name:
                return value
        return default

    def indexed(self, name: str) -> list[str]:
        """`Name[0]`, `Name[1]`, … in index order (and a bare `Name` as index 0)."""
        found: dict[int, str] = {}
        for key, value in self.params:
            if key == name:
                found.setdefault(0, value)
            elif (
                key.startswith(f"{name}[")
                and key.endswith("]")
                and (index := ascii_int(key[len(name) + 1 : -1])) is not None
            ):
                found[index] = value
        return [found[i] for i in sorted(found)]

    def step_url(self, step: str, **extra: object) -> str:
        query = urlencode({"step": step, **{k: str(v) for k, v in extra.items()}})
        return webhook_url(self.settings, f"/api/flowStep?{query}&{self.carry}")


def render_twiml(query: Sequence[tuple[str, str]], call: Mapping[str, str] | None = None) -> str:
    """TwiML for the flow in `query` (the request's query string, never its form).

    `call` holds Twilio's call fields (From, …): read for AllowedCallers, never as parameters.
    """
    flow = _open(query)
    if flow is None:
        return build_hangup_twiml()
    return _safely(lambda: _MODES.get(flow.get("mode", "message"), _unknown_mode)(flow, call or {}))


def continue_flow(query: Sequence[tuple[str, str]], call: Mapping[str, str]) -> str:
    """TwiML for a step of a flow (/api/flowStep): a Gather's digits, a Dial's result, …"""
    flow = _open([(k, v) for k, v in query if k not in _STEP_PARAMS])
    if flow is None:
        return build_hangup_twiml()
    step = dict(query)
    return _safely(lambda: _STEPS.get(step.get("step", ""), _unknown_step)(flow, call, step))


def _open(query: Sequence[tuple[str, str]]) -> Flow | None:
    settings = get_settings()
    sealed = [value for name, value in query if name == "flow"]
    if not sealed:
        return Flow(tuple(query), None, settings)
    try:
        params = unseal(sealed[0], key=settings.flow_key.get()).params
    except SealRejected as rejected:
        log.warning("sealed flow refused (%s): hanging up", rejected)
        return None
    return Flow(params, sealed[0], settings)


def _safely(render: Callable[[], str]) -> str:
    try:
        return render()
    except InvalidFlow as invalid:
        log.warning("flow refused (%s): apologising and hanging up", invalid)
        return build_apology_twiml()


# --- modes ---------------------------------------------------------------------------------


def _message(flow: Flow, call: Mapping[str, str]) -> str:
    response = VoiceResponse()
    add_message(response, parse_message_flow(flow.params))
    return as_xml(response)


def _forward(flow: Flow, call: Mapping[str, str]) -> str:
    allowed = flow.indexed("AllowedCallers")
    if allowed and call.get("From", "") not in allowed:
        return say_and_hang_up("Sorry, you are not allowed to call this number. Goodbye.")
    number = _permitted(flow.get("PhoneNumber"), flow.settings)
    return _dial(flow, [number], step="dial-done")


def _simulring(flow: Flow, call: Mapping[str, str]) -> str:
    numbers = _numbers(flow)
    whisper = flow.get("Message")
    return _dial(flow, numbers, step="dial-done", whisper=_message_url(flow, whisper))


def _findme(flow: Flow, call: Mapping[str, str], index: int = 0) -> str:
    numbers = _numbers(flow)
    if index >= len(numbers):
        return _fail(flow)
    return _dial(
        flow,
        [numbers[index]],
        step="findme-next",
        whisper=flow.step_url("findme-screen"),
        index=index,
    )


def _menu(flow: Flow, call: Mapping[str, str], attempt: int = 1) -> str:
    _options(flow)  # invalid options refuse the whole menu, before anyone hears it
    response = VoiceResponse()
    gather = response.gather(num_digits=1, action=flow.step_url("menu-choice", attempt=attempt))
    gather.say(clean_text(flow.get("Message", "Please choose an option.")))
    if attempt < MENU_ATTEMPTS:
        response.redirect(flow.step_url("menu-again", attempt=attempt + 1))
    else:
        response.say("Goodbye.")
        response.hangup()
    return as_xml(response)


def _voicemail(flow: Flow, call: Mapping[str, str]) -> str:
    transcribe = flow.get("Transcribe", "false").lower()
    if transcribe not in ("true", "false"):
        raise InvalidFlow("Transcribe must be true or false")
    notify = flow.get("NotifyNumber")
    if notify:
        _permitted(notify, flow.settings)
    response = VoiceResponse()
    greeting = clean_text(flow.get("Message", "Please leave a message after the beep."))
    response.say(greeting)
    response.record(
        action=flow.step_url("voicemail-saved"),
        max_length=bounded(flow.get("MaxLength", "120"), 1, 3600, "MaxLength"),
        transcribe=transcribe == "true",
        transcribe_callback=flow.step_url("voicemail-transcribed")
        if transcribe == "true"
        else None,
        play_beep=True,
    )
    response.say("No message was recorded. Goodbye.")
    response.hangup()
    return as_xml(response)


def _client(flow: Flow, call: Mapping[str, str]) -> str:
    identity = flow.get("Identity")
    if not APP_USER_IDENTITY.match(identity):
        raise InvalidFlow("Identity is not an app user's identity")
    return build_client_dial_twiml(identity)


def _hangup(flow: Flow, call: Mapping[str, str]) -> str:
    return build_hangup_twiml()


def _reject(flow: Flow, call: Mapping[str, str]) -> str:
    reason = flow.get("Reason", "rejected")
    if reason not in ("busy", "rejected"):
        raise InvalidFlow("Reason must be busy or rejected")
    response = VoiceResponse()
    response.reject(reason=reason)
    return as_xml(response)


def _pause(flow: Flow, call: Mapping[str, str]) -> str:
    response = VoiceResponse()
    response.pause(length=bounded(flow.get("Length", "1"), 1, 60, "Length"))
    return as_xml(response)


def _unknown_mode(flow: Flow, call: Mapping[str, str]) -> str:
    raise InvalidFlow("unknown mode")


_MODES: dict[str, Callable[[Flow, Mapping[str, str]], str]] = {
    "message": _message,
    "forward": _forward,
    "simulring": _simulring,
    "findme": _findme,
    "menu": _menu,
    "voicemail": _voicemail,
    "client": _client,
    "hangup": _hangup,
    "reject": _reject,
    "pause": _pause,
}


# --- steps (/api/flowStep) -----------------------------------------------------------------


def _dial_done(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    if call.get("DialCallStatus") == "completed":
        return build_hangup_twiml()
    return _fail(flow)


def _findme_next(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    if call.get("DialCallStatus") == "completed":
        return build_hangup_twiml()
    return _findme(flow, call, bounded(step.get("i", "0"), 0, MAX_NUMBERS, "i") + 1)


def _findme_screen(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    """Asked of whoever answers a findme leg: a voicemail box never presses a key."""
    response = VoiceResponse()
    response.gather(num_digits=1, action=flow.step_url("findme-accept")).say(ACCEPT_PROMPT)
    response.hangup()
    return as_xml(response)


def _findme_accept(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    return as_xml(VoiceResponse())  # an empty whisper: the two parties are connected


def _menu_choice(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    attempt = bounded(step.get("attempt", "1"), 1, MENU_ATTEMPTS, "attempt")
    target = _options(flow).get(call.get("Digits", ""))
    if target is None:
        if attempt >= MENU_ATTEMPTS:
            return say_and_hang_up("Goodbye.")
        return _menu(flow, call, attempt + 1)
    response = VoiceResponse()
    response.redirect(target)
    return as_xml(response)


def _menu_again(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    return _menu(flow, call, bounded(step.get("attempt", "1"), 1, MENU_ATTEMPTS, "attempt"))


def _voicemail_saved(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    from api.services.voicemail import save_voicemail  # storage: only this step pays for it

    save_voicemail(call, notify=flow.get("NotifyNumber") or None)
    return say_and_hang_up("Thank you. Goodbye.")


def _voicemail_transcribed(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    from api.stores.inbox import store_transcription

    store_transcription(call)
    return as_xml(VoiceResponse())


def _unknown_step(flow: Flow, call: Mapping[str, str], step: Mapping[str, str]) -> str:
    raise InvalidFlow("unknown step")


_STEPS: dict[str, Callable[[Flow, Mapping[str, str], Mapping[str, str]], str]] = {
    "dial-done": _dial_done,
    "findme-next": _findme_next,
    "findme-screen": _findme_screen,
    "findme-accept": _findme_accept,
    "menu-choice": _menu_choice,
    "menu-again": _menu_again,
    "voicemail-saved": _voicemail_saved,
    "voicemail-transcribed": _voicemail_transcribed,
}


# --- shared pieces -------------------------------------------------------------------------


def _dial(
    flow: Flow, numbers: list[str], *, step: str, whisper: str | None = None, index: int = 0
) -> str:
    caller_id = flow.get("CallerId", flow.settings.twilio_from_number)
    if (
        caller_id != flow.settings.twilio_from_number
        and caller_id not in flow.settings.twilio_caller_ids
    ):
        raise InvalidFlow("CallerId is not TWILIO_FROM_NUMBER or in TWILIO_CALLER_IDS")
    response = VoiceResponse()
    dial = response.dial(
        caller_id=caller_id,
        timeout=bounded(flow.get("Timeout", "20"), 5, 60, "Timeout"),
        action=flow.step_url(step, i=index),
    )
    for number in numbers:
        dial.number(number, url=whisper)
    return as_xml(response)


def _numbers(flow: Flow) -> list[str]:
    numbers = flow.indexed("PhoneNumbers")
    if not numbers or len(numbers) > MAX_NUMBERS:
        raise InvalidFlow(f"give 1 to {MAX_NUMBERS} PhoneNumbers")
    return [_permitted(number, flow.settings) for number in numbers]


def _permitted(number: str, settings: Settings) -> str:
    """`number` if it is strict E.164 and the destination policy lets it be dialled."""
    from api.core.errors import DestinationNotPermitted
    from api.core.phone import DestinationPolicy, mask, parse_e164

    try:
        parse_e164(number)
        DestinationPolicy.from_settings(settings).check(number)
    except (ValueError, DestinationNotPermitted) as refused:
        log.warning("flow number %s refused: %s", mask(number), refused)
        raise InvalidFlow("a number is outside the destination policy") from None
    return number


def _options(flow: Flow) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in flow.params:
        if key.startswith("Options[") and key.endswith("]"):
            digit = key[len("Options[") : -1]
            if len(digit) != 1 or ascii_int(digit) is None:
                raise InvalidFlow("Options keys must be one digit 0-9")
            options[digit] = _allowed_url(value, flow.settings)
    if not options:
        raise InvalidFlow("a menu needs Options")
    return options


def _fail(flow: Flow) -> str:
    fail_url = flow.get("FailUrl")
    response = VoiceResponse()
    if fail_url:
        response.redirect(_allowed_url(fail_url, flow.settings))
    else:
        response.hangup()
    return as_xml(response)


def _allowed_url(url: str, settings: Settings) -> str:
    """`url` if a flow may send the call there (api.core.urls), else InvalidFlow."""
    if not is_allowed_twiml_url(url, settings, own_twiml=True):
        raise InvalidFlow("a URL is not on ALLOWED_TWIML_HOSTS nor this app's /api/twiml")
    return url


def _message_url(flow: Flow, message: str) -> str | None:
    if not message:
        return None
    return webhook_url(flow.settings, f"/api/twiml?{urlencode({'Message[0]': message})}")
