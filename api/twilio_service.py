"""The only module that talks to Twilio's REST API (and the only one importing twilio.rest).

One client per process, built from explicit settings (never from TWILIO_* environment
variables such as TWILIO_REGION), with explicit timeouts. Twilio's errors become Ahoy's
domain errors here, so nothing above this module knows Twilio's codes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from api.errors import (
    AhoyError,
    ConfigurationError,
    FieldError,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    ValidationFailed,
)
from api.settings import Settings, get_settings

log = logging.getLogger("ahoy.twilio")

CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 10.0

# Twilio refuses the destination: the caller can fix it, so 422 on `to`.
_DESTINATION_ERRORS = {
    21211: "is not a valid phone number for Twilio",
    21408: "is in a region this Twilio account has not enabled",
    21610: "has unsubscribed (replied STOP) from this sender",
    21612: "cannot be reached from this app's number",
    21614: "cannot receive SMS",
    21608: (
        "is not verified: a trial Twilio account can only reach verified numbers. "
        "Verify the number in the Twilio console or upgrade the account"
    ),
}
_RATE_LIMITED = 20429
_DEFAULT_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Created:
    """A message or call Twilio accepted."""

    sid: str
    status: str
    to: str
    from_: str | None
    date_created: datetime | None


class TwilioService:
    """Sends messages and places calls for Ahoy."""

    def __init__(self, settings: Settings, http_client: TwilioHttpClient | None = None) -> None:
        self._settings = settings
        self._client = _build_client(settings, http_client)

    def send_sms(
        self,
        *,
        to: str,
        body: str,
        from_: str | None,
        messaging_service_sid: str | None,
        media_urls: list[str],
    ) -> Created:
        params: dict[str, object] = {"to": to, "body": body}
        if from_ is not None:
            params["from_"] = from_
        else:
            params["messaging_service_sid"] = messaging_service_sid
        if media_urls:
            params["media_url"] = media_urls
        with _translated_errors():
            message = self._client.api.v2010.account.messages.create(**params)
        return Created(
            message.sid or "",
            str(message.status),
            message.to or "",
            message.from_,
            message.date_created,
        )

    def make_call(self, *, to: str, from_: str, url: str) -> Created:
        with _translated_errors():
            call = self._client.api.v2010.account.calls.create(to=to, from_=from_, url=url)
        # twilio-python names this field `_from` on calls (and `from_` on messages).
        return Created(
            call.sid or "", str(call.status), call.to or "", call._from, call.date_created
        )


@lru_cache(maxsize=1)
def get_twilio_service() -> TwilioService:
    """The process's Twilio service: its HTTP connection pool is reused across invocations."""
    return TwilioService(get_settings())


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """Twilio's HTTP client with separate connect and read timeouts and a quiet logger."""

    def __init__(self) -> None:
        quiet = logging.getLogger("ahoy.twilio.http")
        quiet.setLevel(logging.WARNING)  # twilio logs query strings (numbers) at INFO
        super().__init__(timeout=READ_TIMEOUT_SECONDS, logger=quiet)
        # requests takes a (connect, read) pair; twilio's constructor check only takes a number.
        self.timeout = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)


def _build_client(settings: Settings, http_client: TwilioHttpClient | None) -> Client:
    if http_client is None:
        http_client = _HttpClient()
    if settings.twilio_api_key_sid and settings.twilio_api_key_secret:
        username, password = settings.twilio_api_key_sid, settings.twilio_api_key_secret.get()
    else:
        username, password = settings.twilio_account_sid, settings.twilio_auth_token.get()
    client = Client(
        username,
        password,
        account_sid=settings.twilio_account_sid,
        http_client=http_client,
        # Never TWILIO_REGION / TWILIO_EDGE from the process: twilio reads os.environ when this
        # mapping is empty, so it names both, blank.
        environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
    )
    if settings.twilio_api_base_url:
        client.api.base_url = settings.twilio_api_base_url
    return client


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Turn what Twilio or the network raised into Ahoy's domain errors."""
    try:
        yield
    except (TwilioRestException, TwilioServiceException) as exc:
        raise translate_twilio_error(exc.status, exc.code) from None
    except requests.Timeout:
        raise UpstreamTimeout("Twilio did not answer in time; the outcome is unknown.") from None
    except requests.ConnectionError:
        raise UpstreamError("Could not reach Twilio.") from None


def translate_twilio_error(status: int, code: int | None) -> AhoyError:
    """The domain error for Twilio's answer `status`/`code` (see README, "Twilio errors")."""
    if code in _DESTINATION_ERRORS:
        message = _DESTINATION_ERRORS[code]
        return ValidationFailed(
            [FieldError("to", message)],
            detail=f"Twilio refused the destination: it {message}.",
            code=code,
        )
    if code == 21212:
        return ConfigurationError(
            "Twilio rejected this app's From number.", settings=["TWILIO_FROM_NUMBER"], code=code
        )
    if code == 20003 or status == 401:
        return ConfigurationError(
            "Twilio rejected this app's credentials.",
            settings=["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID"],
            code=code,
        )
    if status == 429 or code == _RATE_LIMITED:
        return ServiceUnavailable(
            "Twilio is rate limiting this account; try again shortly.",
            retry_after=_DEFAULT_RETRY_AFTER_SECONDS,
            code=code,
        )
    if status >= 500:
        return UpstreamError(
            f"Twilio failed with HTTP {status}; the outcome is unknown.", code=code
        )
    return UpstreamError(f"Twilio refused the request (error {code}).", code=code)
