"""The send service: what happens when the app asks for an SMS or a call."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from api import flows
from api.auth import Caller
from api.errors import FieldError, ValidationFailed
from api.models import MakeCallRequest, Resource, SendSmsRequest
from api.phone import DestinationPolicy, mask
from api.settings import Settings, get_settings
from api.twilio_service import Created, get_twilio_service
from api.twiml import message_params

log = logging.getLogger("ahoy.messaging")


def send_sms(caller: Caller, request: SendSmsRequest) -> Resource:
    settings = get_settings()
    if request.from_ is not None and request.from_ != settings.twilio_from_number:
        raise ValidationFailed(
            [FieldError("from", "must be this app's number (TWILIO_FROM_NUMBER) or left out")]
        )
    DestinationPolicy.from_settings(settings).check(request.to)
    service_sid = settings.twilio_messaging_service_sid if request.from_ is None else None
    created = get_twilio_service().send_sms(
        to=request.to,
        body=request.body,
        from_=None if service_sid else settings.twilio_from_number,
        messaging_service_sid=service_sid,
        media_urls=list(request.media_url),
    )
    log.info("SMS %s to %s accepted by Twilio", created.sid, mask(request.to))
    return _resource(created)


def make_call(caller: Caller, request: MakeCallRequest) -> Resource:
    settings = get_settings()
    DestinationPolicy.from_settings(settings).check(request.to)
    if request.url is not None:
        url = _allowed_twiml_url(request.url, settings)
    else:
        items = [item for item in (request.message, request.audio_url) if item]
        params = message_params(
            items, voice=request.voice, language=request.language, loop=request.loop
        )
        token = flows.seal(
            params,
            caller=caller.id,
            ttl_seconds=settings.flow_ttl_seconds,
            key=settings.flow_key.get(),
        )
        url = f"{settings.public_base_url}/api/twiml?flow={token}"
    created = get_twilio_service().make_call(
        to=request.to, from_=settings.twilio_from_number, url=url
    )
    log.info("call %s to %s accepted by Twilio", created.sid, mask(request.to))
    return _resource(created)


def _allowed_twiml_url(url: str, settings: Settings) -> str:
    """Only the account owner's own TwiML hosts; never this app (Twilio would sign the fetch)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == settings.public_host.lower() or host not in settings.allowed_twiml_hosts:
        raise ValidationFailed([FieldError("url", "host is not listed in ALLOWED_TWIML_HOSTS")])
    return url


def _resource(created: Created) -> Resource:
    return Resource(
        sid=created.sid,
        status=created.status,
        to=created.to,
        from_=created.from_,
        date_created=created.date_created,
    )
