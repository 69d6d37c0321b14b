"""Voicemail: keep the recording a flow's <Record> made, and text NotifyNumber a link to it
(Ahoy's signed link: the number's owner hears it without Twilio's credentials)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from api.core.errors import AhoyError
from api.core.phone import DestinationPolicy, mask
from api.core.settings import get_settings
from api.services.media import NOTIFICATION_LINK_SECONDS, signed_link
from api.stores import inbox, limits
from api.stores.twilio_service import get_twilio_service

log = logging.getLogger("ahoy.voicemail")


def save_voicemail(call: Mapping[str, str], *, notify: str | None) -> None:
    """Store the recording in the inbox; then, if asked, text `notify` where to hear it."""
    if not inbox.store_voicemail(call):
        return  # a replayed webhook: kept and notified the first time
    if notify:
        sender = call.get("From", "an unknown caller")
        # Ahoy's signed link, never Twilio's media URL (which needs the account's credentials).
        link = signed_link(call.get("RecordingSid", ""), NOTIFICATION_LINK_SECONDS)
        _notify(notify, f"New voicemail from {sender}: {link.url}")


def _notify(number: str, text: str) -> None:
    """A text Ahoy sends on its own: policy-checked and counted against GLOBAL_DAILY_CAP."""
    settings = get_settings()
    try:
        DestinationPolicy.from_settings(settings).check(number)
        limits.consume_global(settings)
        get_twilio_service().send_sms(
            to=number,
            body=text,
            from_=settings.twilio_from_number,
            messaging_service_sid=None,
            media_urls=[],
            status_callback=None,
        )
    except AhoyError as failed:  # the caller's voicemail is kept either way
        log.warning("voicemail notification to %s not sent: %s", mask(number), failed.slug)
