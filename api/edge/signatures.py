"""X-Twilio-Signature checks for every Twilio-facing route, through twilio's RequestValidator.

Twilio signs a webhook one of two ways. By default, HMAC-SHA1 with the account's auth token
(TWILIO_AUTH_TOKEN, or TWILIO_AUTH_TOKEN_SECONDARY while it is rotated). When a Webhook Rule
of the account matches the URL, with a SharedKey and the rule's algorithm (HMAC-SHA256), and
the request says so in X-Twilio-Webhooks-Signature-Settings (`key=<id>,algorithm=...`): then
only HMAC-SHA256 is accepted, with TWILIO_WEBHOOK_SHARED_KEY (or its _SECONDARY while the key
is rotated). The signed string is the same either way; twilio-python computes both.

The URL that is checked is rebuilt from PUBLIC_BASE_URL, the request's path and its raw query
string: behind Azure's front end `req.url` can carry an internal scheme and host, and
forwarded headers are not to be trusted.
"""

from __future__ import annotations

import itertools
import logging
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from api.core.errors import InvalidSignature
from api.core.settings import WEBHOOK_SHARED_KEY, Settings, get_settings
from api.core.urls import CONNECTION_OVERRIDES
from api.edge.http import media_type

log = logging.getLogger("ahoy.signatures")

SIGNATURE_HEADER = "X-Twilio-Signature"


def verify_twilio_request(req: func.HttpRequest) -> dict[str, str]:
    """Twilio's form fields, once its signature is checked; InvalidSignature (403) otherwise.

    Repeated fields keep their first value here; the signature was checked over all of them.
    """
    settings = get_settings()
    if not settings.validate_signatures:  # local host on loopback only (see settings)
        return _fields(req)
    signature = req.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise InvalidSignature("The request has no X-Twilio-Signature.")
    algorithm, secrets = _signing(req.headers.get(SIGNATURE_SETTINGS_HEADER), settings)
    url = public_url(req, settings)
    content_type = media_type(req)
    params: object = {}
    if "bodySHA256=" in (urlsplit(url).query or ""):
        # JSON webhooks: the body is hashed into the URL; pass the raw text so it is checked.
        params = req.get_body().decode("utf-8", errors="replace")
    elif content_type == "application/x-www-form-urlencoded":
        params = FormParams.parse(req.get_body())
    elif req.get_body():
        raise InvalidSignature("Twilio signs form bodies and hashed JSON bodies only.")
    # The URL as requested; else as Ahoy handed it out, with its connection overrides (HTTP
    # never sends a fragment; Twilio's documentation here does not say which one it signs).
    handed_out = f"{url}#{CONNECTION_OVERRIDES}"
    for signed_url, secret in itertools.product((url, handed_out), secrets):
        try:
            validator = RequestValidator(secret)
            if validator.validate(signed_url, params, signature, algorithm=algorithm):
                return params.first() if isinstance(params, FormParams) else {}
        except (TypeError, ValueError):  # what the validator raises on inputs it cannot sign
            break
    log.warning("refused a request to %s: X-Twilio-Signature does not match", urlsplit(url).path)
    raise InvalidSignature("X-Twilio-Signature does not match this request.")


class FormParams(dict[str, list[str]]):
    """A form body with repeated keys kept, as RequestValidator reads it (`getall`).

    `getall` is the first of the multi-value calls the validator tries; offering it spares the
    validator two caught AttributeErrors per field (a quarter of its time on a six-field form).

    A plain dict would drop repeated keys and break the signature; werkzeug's multidict (what
    `req.form` builds) costs more than the whole signature check on the TwiML path.
    """

    @classmethod
    def parse(cls, body: bytes) -> FormParams:
        params = cls()
        for name, value in parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True
        ):
            params.setdefault(name, []).append(value)
        return params

    def getall(self, name: str) -> list[str]:
        return self.get(name, [])

    def first(self) -> dict[str, str]:
        return {name: values[0] for name, values in self.items()}


def _fields(req: func.HttpRequest) -> dict[str, str]:
    if media_type(req) != "application/x-www-form-urlencoded":
        return {}
    return FormParams.parse(req.get_body()).first()


def public_url(req: func.HttpRequest, settings: Settings) -> str:
    """The URL Twilio requested, as it knows it: PUBLIC_BASE_URL + path + raw query."""
    parts = urlsplit(req.url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{settings.public_base_url}{parts.path}{query}"


def _signing(header: str | None, settings: Settings) -> tuple[str, list[str]]:
    """The algorithm and the secrets a request's signature may be checked with."""
    if header is None:  # the auth token's signature
        tokens = [settings.twilio_auth_token.get()]
        if settings.twilio_auth_token_secondary is not None:
            tokens.append(settings.twilio_auth_token_secondary.get())
        return HMAC_SHA1, tokens
    # A shared key's signature: HMAC-SHA256 only, so a request cannot ask for a weaker check.
    algorithm = get_signature_algorithm(header).upper()
    if algorithm != HMAC_SHA256:
        raise InvalidSignature(
            f"{SIGNATURE_SETTINGS_HEADER} names an algorithm Ahoy does not accept; "
            f"use {HMAC_SHA256} in the Webhook Rule."
        )
    if not settings.webhook_shared_keys:
        raise InvalidSignature(
            "This webhook is signed with a Twilio shared key, and none is configured: set "
            f"{WEBHOOK_SHARED_KEY} to the SharedKey's secret."
        )
    return HMAC_SHA256, [key.get() for key in settings.webhook_shared_keys]
