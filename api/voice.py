"""In-app calling with the Twilio Voice SDK: access tokens, and the TwiML App's Voice URL.

The token's identity is the signed-in caller's own stable id (never a request parameter), so
a call the app places through the TwiML App is that caller's call: the same destination
policy, limits and ledger as makeCall apply when /api/voice renders it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from api import ledger
from api.auth import Caller
from api.errors import AhoyError, ConfigurationError
from api.messaging import admit
from api.models import VoiceToken
from api.phone import DestinationPolicy, mask, parse_e164
from api.settings import Settings, get_settings
from api.storage import ResourceNotFoundError, get_tables, storage_errors
from api.twiml import (
    APP_USER_IDENTITY,
    build_apology_twiml,
    build_client_dial_twiml,
    build_number_dial_twiml,
)

log = logging.getLogger("ahoy.voice")

IDENTITIES_TABLE = "identities"


def identity_for(caller_id: str) -> str:
    """The Voice SDK identity of a caller: its id when Twilio accepts it as is, else a digest."""
    if APP_USER_IDENTITY.match(caller_id):
        return caller_id
    return "u_" + hashlib.sha256(caller_id.encode()).hexdigest()[:48]


def mint_token(caller: Caller) -> VoiceToken:
    """An AccessToken with a VoiceGrant for `caller`, signed with the API key."""
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VoiceGrant

    settings = get_settings()
    missing = [
        name
        for name, value in (
            ("TWILIO_API_KEY_SID", settings.twilio_api_key_sid),
            ("TWILIO_API_KEY_SECRET", settings.twilio_api_key_secret),
            ("TWILIO_TWIML_APP_SID", settings.twilio_twiml_app_sid),
        )
        if value is None
    ]
    if missing or settings.twilio_api_key_secret is None:
        raise ConfigurationError.missing(missing)
    identity = identity_for(caller.id)
    if identity != caller.id:
        _remember(identity, caller.id)
    expires = int(time.time()) + settings.token_ttl_seconds
    token = AccessToken(
        settings.twilio_account_sid,
        settings.twilio_api_key_sid,
        settings.twilio_api_key_secret.get(),
        identity=identity,
        valid_until=expires,
    )
    token.add_grant(
        VoiceGrant(
            outgoing_application_sid=settings.twilio_twiml_app_sid,
            incoming_allow=True,
            push_credential_sid=settings.twilio_push_credential_sid,
        )
    )
    return VoiceToken(
        token=str(token.to_jwt()),
        identity=identity,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


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
    """Policy, ledger row and limits for one dialled number; its ledger reference."""
    DestinationPolicy.from_settings(settings).check(number)  # refused: nothing counted
    row = ledger.Row(
        ref=ledger.new_ref(),
        caller=caller_id,
        kind="call",
        to=number,
        from_=settings.twilio_from_number,
        created=ledger.now(),
    )
    admit(row, settings)  # the same ledger and counters as makeCall
    return row.ref


def _caller_of(sender: str) -> str | None:
    identity = sender.removeprefix("client:")
    if not sender.startswith("client:") or not APP_USER_IDENTITY.match(identity):
        return None
    with storage_errors():
        try:
            entity = get_tables()(IDENTITIES_TABLE).get_entity(identity, "")
        except ResourceNotFoundError:
            return identity  # an id Twilio takes as it is is its own identity
    return str(entity["Caller"])


def _remember(identity: str, caller_id: str) -> None:
    with storage_errors():
        get_tables()(IDENTITIES_TABLE).upsert_entity(
            {"PartitionKey": identity, "RowKey": "", "Caller": caller_id}
        )
