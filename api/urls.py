"""The rule for URLs Ahoy hands to Twilio to fetch TwiML from (makeCall `url`, flow redirects).

Only the account owner's own TwiML hosts (ALLOWED_TWIML_HOSTS), over https, and never this
app's own host, since Twilio signs every fetch and Ahoy's webhooks trust a signature. Flows
may also point at this app's own /api/twiml, which renders under the same rules.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from api.settings import Settings

OWN_TWIML_PATH = "/api/twiml"


def is_allowed_twiml_url(url: str, settings: Settings, *, own_twiml: bool = False) -> bool:
    """True if Twilio may fetch TwiML from `url`; `own_twiml` also admits this app's /api/twiml."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if own_twiml:
        own = urlsplit(settings.public_base_url)
        if (parts.scheme, parts.netloc, parts.path) == (own.scheme, own.netloc, OWN_TWIML_PATH):
            return True
    return (
        parts.scheme == "https"
        and host != settings.public_host.lower()
        and host in settings.allowed_twiml_hosts
    )
