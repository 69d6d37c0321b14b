"""The only module that talks to Twilio's REST API (and the only one importing twilio.rest).

One client per process, built from explicit settings (never from TWILIO_* environment
variables such as TWILIO_REGION), with explicit timeouts. Twilio's errors become Ahoy's
domain errors here, so nothing above this module knows Twilio's codes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from api.core import root
from api.core.errors import (
    AhoyError,
    ConfigurationError,
    Conflict,
    FieldError,
    NotFound,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    ValidationFailed,
)
from api.core.logs import quiet_url_loggers
from api.core.settings import Settings, get_settings

log = logging.getLogger("ahoy.twilio")

CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 10.0
MEDIA_TIMEOUT_SECONDS = 20.0  # a voicemail's MP3 is at most a few MB
NOT_CANCELABLE = 30409  # Twilio: the message is not scheduled (sent already, or canceled)

_TRIAL = (
    "is not verified: a trial Twilio account can only reach verified numbers. "
    "Verify the number in the Twilio console or upgrade the account"
)
# Twilio refuses the destination: the caller can fix it, so 422 on `to`. Messages and calls
# answer with their own codes.
_DESTINATION_ERRORS = {
    "sms": {
        21211: "is not a valid phone number for Twilio",
        21408: "is in a region this Twilio account has not enabled",
        21610: "has unsubscribed (replied STOP) from this sender",
        21612: "cannot be reached from this app's number",
        21614: "cannot receive SMS",
        21608: _TRIAL,
    },
    "call": {
        21211: "is not a valid phone number for Twilio",
        21217: "is not a valid phone number for Twilio",
        21214: "cannot be reached",
        21612: "cannot be reached from this app's number",
        21215: "is in a region this Twilio account is not allowed to call",
        21216: "is blocked for calls from this Twilio account",
        21219: _TRIAL,
    },
}
# Twilio refuses the sender: the operator must fix TWILIO_FROM_NUMBER.
_SENDER_ERRORS = {"sms": {21212, 21606}, "call": {21212, 21210}}
_QUEUE_FULL = 21611  # too many messages queued on this sender
_RATE_LIMITED = 20429
_DEFAULT_RETRY_AFTER_SECONDS = 5
RATE_LIMIT_RETRIES = 2
MAX_RETRY_WAIT_SECONDS = 5.0
CALL_STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


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
        # Media is binary: fetched on the same pooled session, not through twilio's text client.
        self._session: requests.Session = getattr(self._client.http_client, "session", None) or (
            requests.Session()
        )

    def send_sms(
        self,
        *,
        to: str,
        body: str,
        from_: str | None,
        messaging_service_sid: str | None,
        media_urls: list[str],
        status_callback: str | None,
        send_at: datetime | None = None,
    ) -> Created:
        params: dict[str, object] = {"to": to, "body": body}
        if send_at is not None:  # Twilio holds it until then (a Messaging Service only)
            params["schedule_type"] = "fixed"
            params["send_at"] = send_at
        if status_callback is not None:
            params["status_callback"] = status_callback
        if from_ is not None:
            params["from_"] = from_
        else:
            params["messaging_service_sid"] = messaging_service_sid
        if media_urls:
            params["media_url"] = media_urls
        with _translated_errors("sms"):
            message = self._client.api.v2010.account.messages.create(**params)
        return _created(message, message.from_)

    def make_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        time_limit: int,
        fallback_url: str | None = None,
    ) -> Created:
        extra = {} if fallback_url is None else {"fallback_url": fallback_url}
        with _translated_errors("call"):
            call = self._client.api.v2010.account.calls.create(
                to=to,
                from_=from_,
                url=url,
                **extra,
                status_callback=status_callback,
                status_callback_event=CALL_STATUS_EVENTS,
                status_callback_method="POST",
                time_limit=time_limit,
            )
        return _created(call, call._from)  # twilio-python names it `_from` on calls

    def cancel_message(self, sid: str) -> None:
        """Cancel a scheduled message; Conflict when Twilio says it is no longer scheduled."""
        with _translated_errors("sms"):
            try:
                self._client.api.v2010.account.messages(sid).update(status="canceled")
            except TwilioRestException as exc:
                if exc.code == NOT_CANCELABLE:
                    raise Conflict(
                        "The message is no longer scheduled: it was not canceled."
                    ) from None
                raise

    def fetch_recording(self, sid: str) -> bytes:
        """A recording's audio (MP3), fetched with the account's credentials (Twilio enforces
        HTTP authentication on media for new accounts); NotFound when Twilio has none."""
        settings = self._settings
        base = settings.twilio_api_base_url or "https://api.twilio.com"
        url = f"{base}/2010-04-01/Accounts/{settings.twilio_account_sid}/Recordings/{sid}.mp3"
        with _translated_errors("call"):
            answer = self._session.get(
                url,
                auth=self._client.auth,
                timeout=(CONNECT_TIMEOUT_SECONDS, MEDIA_TIMEOUT_SECONDS),
                allow_redirects=True,  # Twilio redirects media to its storage
            )
        if answer.status_code == 404:
            raise NotFound(f"Twilio has no recording {sid}.")
        if answer.status_code >= 400:
            raise translate_twilio_error(answer.status_code, None, "call")
        return answer.content

    def delete_recording(self, sid: str) -> None:
        """Delete a recording at Twilio (one already gone counts as deleted)."""
        with _translated_errors("call"):
            try:
                self._client.api.v2010.account.recordings(sid).delete()
            except TwilioRestException as exc:
                if exc.status != 404:
                    raise

    def find_messages(
        self, *, to: str, from_: str | None, since: datetime, until: datetime
    ) -> list[Found]:
        """Messages sent through the REST API to `to` (from `from_`) created in [since, until]."""
        with _translated_errors("sms"):
            # No DateSent filter: a message still queued or scheduled has no date sent yet.
            listed = self._client.api.v2010.account.messages.list(to=to, from_=from_, limit=50)
        return [Found(_created(m, m.from_), m.body or "") for m in listed if _sent(m, since, until)]

    def find_calls(self, *, to: str, from_: str, since: datetime, until: datetime) -> list[Found]:
        """Calls placed through the REST API to `to` from `from_` created in [since, until]."""
        with _translated_errors("call"):
            # No StartTime filter: a call still queued has not started.
            listed = self._client.api.v2010.account.calls.list(to=to, from_=from_, limit=50)
        return [Found(_created(c, c._from), "") for c in listed if _sent(c, since, until)]


def _sent(resource: object, since: datetime, until: datetime) -> bool:
    """Created through the REST API within [since, until]: Twilio's `direction` tells the
    API's own sends (`outbound-api`) from replies, <Dial> legs and inbound traffic."""
    created = getattr(resource, "date_created", None)
    return (
        getattr(resource, "direction", None) == "outbound-api"
        and created is not None
        and since <= created <= until
    )


@dataclass(frozen=True)
class Found:
    """A resource found in Twilio's lists, for reconciling a send whose answer was lost."""

    created: Created
    body: str


def _created(resource: object, from_: str | None) -> Created:
    return Created(
        getattr(resource, "sid", None) or "",
        str(getattr(resource, "status", "")),
        getattr(resource, "to", None) or "",
        from_,
        getattr(resource, "date_created", None),
    )


def get_twilio_service() -> TwilioService:
    """The process's Twilio service: its HTTP connection pool is reused across invocations
    (see `api.core.root`)."""
    return root.get(root.TWILIO, lambda: TwilioService(get_settings()))


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """Twilio's HTTP client, retrying only what cannot send twice.

    - separate connect and read timeouts, well under the function timeout;
    - connection failures before the request is written are retried (urllib3 `connect`);
      nothing else is: a POST whose answer was lost may have been acted on;
    - 429 (Twilio never processed it) is retried after Retry-After, bounded and jittered;
    - a quiet logger: twilio logs query strings, which hold phone numbers, at INFO.
    """

    def __init__(self) -> None:
        from urllib3.util.retry import Retry

        quiet = logging.getLogger("ahoy.twilio.http")
        quiet.setLevel(logging.WARNING)
        quiet_url_loggers()
        super().__init__(timeout=READ_TIMEOUT_SECONDS, logger=quiet)
        # requests takes a (connect, read) pair; twilio's constructor check only takes a number.
        self.timeout = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
        retry = Retry(
            total=None, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0.2
        )
        for scheme in ("https://", "http://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry, pool_maxsize=32))

    def request(self, *args: object, **kwargs: object) -> object:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            response = super().request(*args, **kwargs)
            if response.status_code != 429:
                return response
            wait = _retry_after(response.headers)
            if attempt == RATE_LIMIT_RETRIES:
                raise ServiceUnavailable(
                    "Twilio is rate limiting this account; try again shortly.",
                    retry_after=max(1, round(wait)),
                    code=_RATE_LIMITED,
                )
            time.sleep(min(wait, MAX_RETRY_WAIT_SECONDS) * random.uniform(0.8, 1.2))  # noqa: S311
        raise AssertionError("unreachable")


def _retry_after(headers: object) -> float:
    try:
        return max(0.0, float(getattr(headers, "get", lambda _: None)("Retry-After") or 1))
    except ValueError:
        return 1.0


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
def _translated_errors(channel: str) -> Iterator[None]:
    """Turn what Twilio or the network raised into Ahoy's domain errors."""
    try:
        yield
    except (TwilioRestException, TwilioServiceException) as exc:
        raise translate_twilio_error(exc.status, exc.code, channel) from None
    except (ValueError, TypeError, AttributeError, KeyError):
        # Twilio (or a proxy in front of it) answered 2xx with a body that is not its JSON:
        # whatever was asked may have been done.
        raise UpstreamError(
            "Twilio's answer could not be read; the outcome is unknown.", outcome_unknown=True
        ) from None
    except TwilioException:
        # The library's root error: a list page that was not a 200, an answer it could not
        # read. Twilio may have acted on what was asked.
        raise UpstreamError(
            "Twilio answered in a way Ahoy could not read; the outcome is unknown.",
            outcome_unknown=True,
        ) from None
    except requests.ConnectTimeout:
        raise UpstreamUnreachable("Could not reach Twilio; nothing was sent.") from None
    except requests.Timeout:
        raise UpstreamTimeout("Twilio did not answer in time; the outcome is unknown.") from None
    except requests.ConnectionError as exc:
        if _never_connected(exc):
            raise UpstreamUnreachable("Could not reach Twilio; nothing was sent.") from None
        raise UpstreamError(
            "The connection to Twilio broke; the outcome is unknown.", outcome_unknown=True
        ) from None


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the request was never written (refused, DNS, connect timeout)."""
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def translate_twilio_error(status: int, code: int | None, channel: str = "sms") -> AhoyError:
    """The domain error for Twilio's answer `status`/`code` to a message or call request
    (`channel` "sms" or "call"; see README, "Errors")."""
    destination_errors = _DESTINATION_ERRORS[channel]
    if code in destination_errors:
        message = destination_errors[code]
        return ValidationFailed(
            [FieldError("to", message)],
            detail=f"Twilio refused the destination: it {message}.",
            code=code,
        )
    if code in _SENDER_ERRORS[channel]:
        return ConfigurationError(
            "Twilio rejected this app's From number: it is invalid, not this account's, or "
            f"cannot {'send SMS' if channel == 'sms' else 'place calls'}.",
            settings=["TWILIO_FROM_NUMBER"],
            code=code,
        )
    if code == _QUEUE_FULL:
        return ServiceUnavailable(
            "Too many messages are queued on this app's number; try again later.",
            retry_after=60,
            code=code,
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
            f"Twilio failed with HTTP {status}; the outcome is unknown.",
            code=code,
            outcome_unknown=True,
        )
    return UpstreamError(f"Twilio refused the request (error {code}).", code=code)
