"""Requests from the sandbox to the app, signed with X-Twilio-Signature as Twilio signs them:
with the account's auth token (HMAC-SHA1), or, when the account signs its webhooks with a
SharedKey (a Webhook Rule matching every URL), with that key and HMAC-SHA256, announced in
X-Twilio-Webhooks-Signature-Settings.

Only loopback URLs are fetched: the sandbox never reaches beyond this machine.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator

TIMEOUT_SECONDS = 15  # Twilio's own limit for a TwiML fetch


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: str


class NotLoopback(ValueError):
    """The sandbox only talks to this machine."""


@dataclass(frozen=True)
class Signer:
    """How the account signs its webhooks: its auth token, or a SharedKey when it has one."""

    auth_token: str
    shared_key: str | None = None
    shared_key_id: str = "webhooks_sharedkey_sandbox"

    def headers(self, url: str, params: dict[str, str]) -> dict[str, str]:
        if self.shared_key is None:
            signature = RequestValidator(self.auth_token).compute_signature(url, params)
            return {"X-Twilio-Signature": signature}
        signature = RequestValidator(self.shared_key).compute_signature(url, params, HMAC_SHA256)
        return {
            "X-Twilio-Signature": signature,
            SIGNATURE_SETTINGS_HEADER: f"key={self.shared_key_id},algorithm={HMAC_SHA256}",
        }


def signed_request(
    url: str, params: dict[str, str], signer: Signer, method: str = "POST"
) -> Answer:
    """POST `params` (or GET them in the query) to `url`, signed as Twilio would sign it. A
    fragment (Twilio's connection overrides) is read by the caller, never sent: the request,
    and so its signature, are for the URL without it."""
    url = url.split("#", 1)[0]
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or (host != "localhost" and not _is_loopback(host)):
        raise NotLoopback(host or url)
    if method.upper() == "GET":
        url = url + ("&" if "?" in url else "?") + urlencode(params)
        headers = signer.headers(url, {})
        request = urllib.request.Request(url, method="GET")  # noqa: S310  # checked above
    else:
        headers = signer.headers(url, params)
        request = urllib.request.Request(  # noqa: S310  # scheme and host checked above
            url,
            data=urlencode(params).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    for name, value in headers.items():
        request.add_header(name, value)
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
