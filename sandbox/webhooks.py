"""Requests from the sandbox to the app, signed with X-Twilio-Signature as Twilio signs them.

Only loopback URLs are fetched: the sandbox never reaches beyond this machine.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

TIMEOUT_SECONDS = 15  # Twilio's own limit for a TwiML fetch


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: str


class NotLoopback(ValueError):
    """The sandbox only talks to this machine."""


def signed_request(url: str, params: dict[str, str], token: str, method: str = "POST") -> Answer:
    """POST `params` (or GET them in the query) to `url`, signed as Twilio would sign it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or (host != "localhost" and not _is_loopback(host)):
        raise NotLoopback(host or url)
    if method.upper() == "GET":
        url = url + ("&" if "?" in url else "?") + urlencode(params)
        signature = RequestValidator(token).compute_signature(url, {})
        request = urllib.request.Request(url, method="GET")  # noqa: S310  # checked above
    else:
        signature = RequestValidator(token).compute_signature(url, params)
        request = urllib.request.Request(  # noqa: S310  # scheme and host checked above
            url,
            data=urlencode(params).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    request.add_header("X-Twilio-Signature", signature)
    request.add_header("User-Agent", "TwilioProxy/1.1 (Ahoy sandbox)")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310  # loopback only
            return Answer(
                response.status,
                response.headers.get("Content-Type", ""),
                response.read().decode("utf-8", errors="replace"),
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers.get("Content-Type", ""), "")
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return Answer(0, "", "")


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
