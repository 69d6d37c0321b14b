"""What the app asks to send: an SMS or a call, checked and shaped for Twilio, then handed
to the send (`api.services.sending`), which owns admission, the key, Twilio's answer and the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from api.core import clock, sealing
from api.core.answers import Answer
from api.core.call_twiml import message_params
from api.core.errors import ConfigurationError, Conflict, FieldError, NotFound, ValidationFailed
from api.core.models import OWN_APP, MakeCallRequest, Record, SendSmsRequest
from api.core.phone import DestinationPolicy
from api.core.settings import Settings, get_settings
from api.core.urls import VOICE_FALLBACK_PATH, is_allowed_twiml_url, webhook_url
from api.services.history import get_record
from api.services.sending import Send, hash_text
from api.stores import conversations, identities, ledger, opt_outs
from api.stores.storage import keep_trying
from api.stores.twilio_service import Created, get_twilio_service

log = logging.getLogger("ahoy.messaging")

MAX_TWILIO_URL = 4000  # the longest Url Twilio's Calls API takes
OPTED_OUT = 21610  # Twilio: the recipient has unsubscribed from this sender
SCHEDULE_MIN, SCHEDULE_MAX = timedelta(minutes=15), timedelta(days=35)  # Twilio's window


def send_sms(caller_id: str, request: SendSmsRequest, key: str | None) -> Answer:
    send = Send(caller_id, "sms", request.model_dump_json(by_alias=True), key)
    settings = get_settings()
    if request.from_ is not None and request.from_ != settings.twilio_from_number:
        raise ValidationFailed(
            [FieldError("from", "must be this app's number (TWILIO_FROM_NUMBER) or left out")]
        )
    DestinationPolicy.from_settings(settings).check(request.to)
    if request.send_at is not None:
        _check_schedule(request, settings)
    service_sid = settings.twilio_messaging_service_sid if request.from_ is None else None
    from_ = None if service_sid else settings.twilio_from_number
    row = ledger.new_row(
        caller_id, "sms", request.to, from_ or service_sid, body_hash=hash_text(request.body)
    )

    def create(status_callback: str) -> Created:
        return get_twilio_service().send_sms(
            to=request.to,
            body=request.body,
            from_=from_,
            messaging_service_sid=service_sid,
            media_urls=list(request.media_url),
            status_callback=status_callback,
            send_at=request.send_at,
        )

    thread: list[conversations.Thread] = []

    def converse(created: Created) -> list[Callable[[], object]]:
        """The user owns the conversation with `to` now; the message is in their thread."""
        message = conversations.Message(created.sid, "out", request.body)
        return [
            lambda: conversations.claim(caller_id, request.to, clock.now()),
            lambda: conversations.add(caller_id, request.to, message, *thread),
        ]

    def read_thread() -> None:  # with admission: one round trip less after Twilio
        thread.append(conversations.read_thread(caller_id, request.to))

    try:
        return send.run(
            row, create, (read_thread, converse), check=lambda: opt_outs.check(request.to)
        )
    except ValidationFailed as refused:
        if refused.code == OPTED_OUT:  # Twilio knew first (its own STOP list): keep it too
            keep_trying(lambda: opt_outs.mark(request.to, "Twilio 21610"), "an opt-out")
        raise


def _check_schedule(request: SendSmsRequest, settings: Settings) -> None:
    """A scheduled message goes through the Messaging Service (Twilio schedules only there),
    15 minutes to 35 days ahead (Twilio's window)."""
    if settings.twilio_messaging_service_sid is None:
        raise ConfigurationError(
            "Scheduled messages need this app's Messaging Service.",
            settings=["TWILIO_MESSAGING_SERVICE_SID"],
        )
    if request.from_ is not None:
        raise ValidationFailed(
            [FieldError("from", "is the Messaging Service's to choose for a scheduled message")]
        )
    ahead = request.send_at - clock.now() if request.send_at else timedelta(0)
    if not SCHEDULE_MIN <= ahead <= SCHEDULE_MAX:
        raise ValidationFailed([FieldError("sendAt", "must be 15 minutes to 35 days from now")])


def cancel_message(caller_id: str, sid: str) -> Record:
    """Cancel a scheduled message of the caller's: Twilio never sends it."""
    row = ledger.find_by_sid(caller_id, sid)
    if row is None or row.kind != "sms":
        raise NotFound(f"No message {sid} of yours.")
    if row.status != "scheduled":
        raise Conflict("Only a scheduled message can be canceled; this one is not (any more).")
    get_twilio_service().cancel_message(sid)
    ledger.record_status(row.ref, sid=sid, status="canceled")
    return get_record(caller_id, "sms", sid)


def make_call(caller_id: str, request: MakeCallRequest, key: str | None) -> Answer:
    send = Send(caller_id, "call", request.model_dump_json(by_alias=True), key)
    settings = get_settings()
    own_app = request.to == OWN_APP
    if own_app:  # ring the caller's own app: a developer's way to try incoming calls
        to = f"client:{identities.identity_for(caller_id)}"
    else:
        DestinationPolicy.from_settings(settings).check(request.to)
        to = request.to
    if request.url is not None:
        if not is_allowed_twiml_url(request.url, settings):
            raise ValidationFailed([FieldError("url", "host is not listed in ALLOWED_TWIML_HOSTS")])
        url = request.url
    else:
        items = [item for item in (request.message, request.audio_url) if item]
        params = message_params(
            items, voice=request.voice, language=request.language, loop=request.loop
        )
        token = sealing.seal(
            params,
            caller=caller_id,
            ttl_seconds=settings.flow_ttl_seconds,
            key=settings.flow_key.get(),
        )
        url = webhook_url(settings, f"/api/twiml?flow={token}")
        if len(url) > MAX_TWILIO_URL:  # sealing grows the text: non-ASCII text up to 9 times
            raise ValidationFailed(
                [
                    FieldError(
                        "message",
                        "is too long once sealed: Twilio takes URLs of at most "
                        f"{MAX_TWILIO_URL} characters",
                    )
                ]
            )
    row = ledger.new_row(caller_id, "call", to, settings.twilio_from_number)

    def create(status_callback: str) -> Created:
        return get_twilio_service().make_call(
            to=to,
            from_=settings.twilio_from_number,
            url=url,
            status_callback=status_callback,
            time_limit=settings.call_time_limit_seconds,
            # Twilio speaks this when the call's TwiML cannot be fetched (a cold start past
            # every retry): an apology, not Twilio's "an application error has occurred".
            fallback_url=f"{settings.public_base_url}{VOICE_FALLBACK_PATH}",
        )

    def converse(created: Created) -> list[Callable[[], object]]:
        """The caller owns the conversation with the number now: its calls ring them."""
        return [lambda: conversations.claim(caller_id, to, clock.now())]

    return send.run(row, create, None if own_app else (None, converse))
