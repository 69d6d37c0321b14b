"""The TwiML App's Voice URL (/api/voice): calls the app places with the Twilio Voice SDK.

From is `client:<identity>` of a signed-in caller (see `api.services.voice_tokens`); To is a
phone number, another app user by user id (`user:<id>`), or by Voice SDK identity
(`client:<identity>`). A number passes the same destination policy, admission (ledger row,
limits) and status callbacks as makeCall, and makes the caller the owner of the conversation
with it (its calls and texts reach them). A user is called under the same limits and ledger,
and sees the caller's display name (`callerName`). This is a TwiML webhook under Twilio's 15 s
budget: nothing here loads pydantic or twilio.rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from api.core import clock
from api.core.call_twiml import (
    APP_USER_IDENTITY,
    build_apology_twiml,
    build_client_dial_twiml,
    build_number_dial_twiml,
    build_user_dial_twiml,
)
from api.core.errors import AhoyError
from api.core.phone import DestinationPolicy, mask, parse_e164
from api.core.settings import Settings, get_settings
from api.core.urls import webhook_url
from api.services.sending import admit
from api.stores import conversations, identities, ledger

log = logging.getLogger("ahoy.voice")

USER_PREFIX = "user:"  # To of an app-to-app call: the callee's user id


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
    if to.startswith(USER_PREFIX):
        return _call_user(caller_id, to.removeprefix(USER_PREFIX), settings)
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
    try:  # the caller owns the conversation with the number now: its calls ring them
        conversations.claim(caller_id, number, clock.now())
    except AhoyError as failed:
        log.warning("voice call to %s: route not recorded (%s)", mask(number), failed.slug)
    return build_number_dial_twiml(
        number,
        caller_id=settings.twilio_from_number,
        status_callback=webhook_url(settings, f"/api/status?ref={ref}"),
    )


def _call_user(caller_id: str, callee_id: str, settings: Settings) -> str:
    """Ring another app user by their user id: a user who has taken a token (their app can
    ring), under the caller's limits and ledger; the callee sees the caller's name."""
    try:
        callee = identities.known(callee_id) if 0 < len(callee_id) <= 256 else None
        me = identities.known(caller_id)
        if callee is None or callee_id == caller_id:
            log.info("voice call refused: no app user to call by that id")
            return build_apology_twiml()
        sender = f"client:{identities.identity_for(caller_id)}"
        row = ledger.new_row(caller_id, "call", USER_PREFIX + callee_id, sender)
        admit(row, settings)
    except AhoyError as refused:
        log.info("voice call to an app user refused: %s", refused.slug)
        return build_apology_twiml()
    return build_user_dial_twiml(
        callee[0],
        caller_name=me[1] if me else caller_id,
        caller_id=caller_id,
        status_callback=webhook_url(settings, f"/api/status?ref={row.ref}"),
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
