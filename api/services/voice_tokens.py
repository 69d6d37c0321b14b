"""Voice SDK access tokens for the app's signed-in callers (GET|POST /api/token).

The token's identity is the caller's own stable id (never a request parameter), so a call
the app places through the TwiML App is that caller's call when /api/voice renders it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from api.core.errors import ConfigurationError, FieldError, ValidationFailed
from api.core.models import VoiceToken
from api.core.settings import PUSH_PLATFORMS, get_settings
from api.stores import identities


def mint_token(caller_id: str, platform: str | None = None, name: str | None = None) -> VoiceToken:
    """An AccessToken with a VoiceGrant for the caller, signed with the API key; with the push
    credential of the device's `platform` (`ios`, `ios-sandbox`, `android`), else the default
    one, else none (the answer's `pushCredentialSid` is then null)."""
    settings = get_settings()
    if platform is not None and platform not in PUSH_PLATFORMS:
        raise ValidationFailed(
            [FieldError("platform", f"must be one of {', '.join(PUSH_PLATFORMS)}")]
        )
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
    identity = identities.identity_for(caller_id)
    identities.remember(identity, caller_id, name)
    push = (platform and settings.push_credentials.get(platform)) or (
        settings.twilio_push_credential_sid
    )
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
            push_credential_sid=push,
        )
    )
    return VoiceToken(
        token=str(token.to_jwt()),
        identity=identity,
        expires_at=datetime.fromtimestamp(expires, UTC),
        platform=platform,
        push_credential_sid=push,
    )
