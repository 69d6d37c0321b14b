"""The TwiML App's Voice URL (/api/voice): calls the app places with the Twilio Voice SDK.

From is `client:<identity>` of a signed-in caller (see `api.services.voice_tokens`); To is
another app user or a phone number. A number passes the same destination policy, admission
(ledger row, limits) and status callbacks as makeCall. This is a TwiML webhook under Twilio's 15 s
budget: nothing here loads pydantic or twilio.rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from api.core.call_twiml import (
    APP_USER_IDENTITY,
    build_apology_twiml,
    build_client_dial_twiml,
    build_number_dial_twiml,
)
from api.core.errors import AhoyError
from api.core.phone import DestinationPolicy, mask, parse_e164
from api.core.settings import Settings, get_settings
from api.services.sending import admit
from api.stores import identities, ledger

log = logging.getLogger("ahoy.voice")


def render_voice(form: Mapping[str, str]) -> str:
    """TwiML for a call the Voice SDK places: From is `client:<identity>`, To where it goes."""
    settings = get_settings()
    caller_id = _caller_of(form.get("From", ""))
    to = form.get("To", "").strip()
    if caller_id is None:
        log.warning("voice call refused: From is not an app user")
        return build_apology_twiml()
    if to.startswith("client:") and APP_USER_IDENTITY.match(to.removeprefix("client:")):
        return build_client_dial_twiml(to.removeprefix("client:"))
    try:
        number = parse_e164(to)
    except ValueError:
        log.info("voice call refused: To is not a number or an app user")
        return build_apology_twiml()
    try:
        ref = _admit(caller_id, number, settings)
    except AhoyError as refused:
        log.info("voice call to %s refused: %s", mask(number), refused.slug)
        return build_apology_twiml()
    return build_number_dial_twiml(
        number,
        caller_id=settings.twilio_from_number,
        status_callback=f"{settings.public_base_url}/api/status?ref={ref}",
    )


def _admit(caller_id: str, number: str, settings: Settings) -> str:
    """Policy, then admission for one dialled number; its ledger reference."""
    DestinationPolicy.from_settings(settings).check(number)  # refused: nothing counted
    row = ledger.new_row(caller_id, "call", number, settings.twilio_from_number)
    admit(row, settings)  # the same ledger and counters as makeCall
    return row.ref


def _caller_of(sender: str) -> str | None:
    identity = sender.removeprefix("client:")
    if not sender.startswith("client:") or not APP_USER_IDENTITY.match(identity):
        return None
    return identities.caller_of(identity)
