"""The rules for every URL Ahoy hands to Twilio or lets Twilio fetch.

A URL is read the way Twilio's fetcher reads it, a WHATWG-conformant parser (ada), and
refused when Python's reading could differ (backslashes, user info, control characters,
whitespace), so a check never passes one host while the fetch goes to another. Hosts are
compared canonical: lower case, IDNA (punycode), IPv4 in any spelling (`127.1`, `0x7f.0.0.1`,
`2130706433`) as dotted decimal, trailing dot removed.

- TwiML URLs (makeCall `url`, a menu's `Options`, `FailUrl`, redirects): https on
  ALLOWED_TWIML_HOSTS, never this app's own host (Twilio signs every fetch, and Ahoy's
  webhooks trust a signature); flows may also point at this app's own /api/twiml.
- Media URLs (`mediaUrl`, `audioUrl`, a message item that is a URL): https on a public DNS
  name: no IP address in any spelling, no single-label, loopback, local or internal name.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from api.core.settings import Settings

OWN_TWIML_PATH = "/api/twiml"
# Twilio's connection overrides, as a URL fragment on every webhook URL Ahoy hands Twilio:
# connect within 3 s (a live instance accepts at once), wait 6 s for the answer (a cold
# start, then milliseconds of Ahoy's work), retry twice on a connect or read timeout or a 5xx
# (every Ahoy webhook is idempotent), all within 14 s, under Twilio's 15 s.
CONNECTION_OVERRIDES = "ct=3000&rt=6000&tt=14000&rc=2&rp=ct,rt,5xx"
VOICE_FALLBACK_PATH = "/api/voiceFallback"


def webhook_url(settings: Settings, path_and_query: str) -> str:
    """The URL of one of Ahoy's webhooks, as handed to Twilio: with the connection overrides.
    The fragment never travels in the request; see `api.edge.signatures` for the signature."""
    return f"{settings.public_base_url}{path_and_query}#{CONNECTION_OVERRIDES}"


_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")  # where parsers disagree, or a fetcher trims
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet")
_PRIVATE_NAMES = {"localhost", "local", "internal", "lan", "home.arpa"}


def fetched_host(url: str) -> str | None:
    """The canonical host Twilio would fetch `url` from; None if it is not https or could be
    read two ways."""
    import ada_url

    if _AMBIGUOUS.search(url) or not url.lower().startswith("https://"):
        return None
    try:
        parsed = ada_url.URL(url)
    except ValueError:
        return None
    if parsed.protocol != "https:" or parsed.username or parsed.password:
        return None
    host = parsed.hostname.lower().removesuffix(".")
    try:
        python_host = (urlsplit(url).hostname or "").removesuffix(".").encode("idna").decode()
    except (UnicodeError, ValueError):
        return None
    if not host or _canonical_ip(python_host.lower()) != _canonical_ip(host):
        return None  # the two readings name different hosts
    return host


def is_allowed_twiml_url(url: str, settings: Settings, *, own_twiml: bool = False) -> bool:
    """True if Twilio may fetch TwiML from `url`; `own_twiml` also admits this app's /api/twiml."""
    if _AMBIGUOUS.search(url):
        return False
    own_flows = settings.public_base_url + OWN_TWIML_PATH
    if own_twiml and (url == own_flows or url.startswith(own_flows + "?")):
        return True
    host = fetched_host(url)
    own_host = (urlsplit(settings.public_base_url).hostname or "").lower().removesuffix(".")
    return host is not None and host != own_host and host in settings.allowed_twiml_hosts


def is_public_https_url(url: str) -> bool:
    """True if `url` is https on a public DNS name (media Twilio fetches for the app)."""
    host = fetched_host(url)
    if host is None or host.startswith("[") or _is_ipv4(host) or "." not in host:
        return False  # an IP address in any spelling (ada writes IPv4 as dotted decimal)
    return host not in _PRIVATE_NAMES and not host.endswith(_PRIVATE_SUFFIXES)


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _canonical_ip(host: str) -> str:
    """Dotted decimal for any IPv4 spelling Python's resolver would accept; else `host`."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    import socket

    try:
        return socket.inet_ntoa(socket.inet_aton(host))  # 127.1, 0x7f.1, 2130706433
    except OSError:
        return host
