"""The send service: what happens when the app asks for an SMS or a call.

In order: the destination policy; admission (the ledger row, written before anything can be
sent, with the Idempotency-Key claim and the limits); Twilio; the outcome and the answer
recorded on the row (a retry with the key gets that answer back). Twilio is never asked twice
for one key: when its answer was lost, a retry reconciles against Twilio's own lists instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta

from api import clock, conversations, idempotency, ledger, sealing
from api.admission import admit
from api.answers import Answer
from api.call_twiml import message_params
from api.errors import (
    AhoyError,
    ClientError,
    Conflict,
    FieldError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    ValidationFailed,
)
from api.models import MakeCallRequest, Resource, SendSmsRequest
from api.phone import DestinationPolicy, mask
from api.problems import problem_for
from api.settings import Settings, get_settings
from api.storage import at_once, keep_trying
from api.twilio_service import Created, get_twilio_service
from api.urls import is_allowed_twiml_url

log = logging.getLogger("ahoy.messaging")

RECONCILE_SLACK = timedelta(minutes=1)  # clock skew between Ahoy and Twilio
# A send's request asks Twilio within its lifetime: host.json's functionTimeout (30 s).
SEND_WINDOW = timedelta(seconds=30)
# Longer than any request can run (the function timeout is 30 s): a row still `pending` after
# it has no request working on it.
IN_FLIGHT_LIMIT = timedelta(minutes=2)
MAX_TWILIO_URL = 4000  # the longest Url Twilio's Calls API takes
IN_FLIGHT_RETRY_AFTER = 2
# What a send leads to: a read made with its admission, then writes made with its row's own
# once Twilio has accepted it.
Follows = tuple[Callable[[], None], Callable[[Created], list[Callable[[], object]]]]
UNKNOWN_RETRY_AFTER = 30


def send_sms(caller_id: str, request: SendSmsRequest, key: str | None) -> Answer:
    settings = get_settings()
    if request.from_ is not None and request.from_ != settings.twilio_from_number:
        raise ValidationFailed(
            [FieldError("from", "must be this app's number (TWILIO_FROM_NUMBER) or left out")]
        )
    DestinationPolicy.from_settings(settings).check(request.to)
    service_sid = settings.twilio_messaging_service_sid if request.from_ is None else None
    from_ = None if service_sid else settings.twilio_from_number
    row = ledger.new_row(
        caller_id, "sms", request.to, from_ or service_sid, body_hash=_hash(request.body)
    )

    def create(status_callback: str) -> Created:
        return get_twilio_service().send_sms(
            to=request.to,
            body=request.body,
            from_=from_,
            messaging_service_sid=service_sid,
            media_urls=list(request.media_url),
            status_callback=status_callback,
        )

    thread: list[conversations.Thread] = []

    def converse(created: Created) -> list[Callable[[], object]]:
        """The user owns the conversation with `to` now; the message is in their thread."""
        message = conversations.Message(created.sid, "out", request.body)
        return [
            lambda: conversations.claim(caller_id, request.to, clock.now()),
            lambda: conversations.add(caller_id, request.to, message, *thread),
        ]

    def read_thread() -> None:  # with admission: one round trip less after Twilio
        thread.append(conversations.read_thread(caller_id, request.to))

    canonical = request.model_dump_json(by_alias=True)
    return _send(row, canonical, key, settings, create, (read_thread, converse))


def make_call(caller_id: str, request: MakeCallRequest, key: str | None) -> Answer:
    settings = get_settings()
    DestinationPolicy.from_settings(settings).check(request.to)
    if request.url is not None:
        if not is_allowed_twiml_url(request.url, settings):
            raise ValidationFailed([FieldError("url", "host is not listed in ALLOWED_TWIML_HOSTS")])
        url = request.url
    else:
        items = [item for item in (request.message, request.audio_url) if item]
        params = message_params(
            items, voice=request.voice, language=request.language, loop=request.loop
        )
        token = sealing.seal(
            params,
            caller=caller_id,
            ttl_seconds=settings.flow_ttl_seconds,
            key=settings.flow_key.get(),
        )
        url = f"{settings.public_base_url}/api/twiml?flow={token}"
        if len(url) > MAX_TWILIO_URL:  # sealing grows the text: non-ASCII text up to 9 times
            raise ValidationFailed(
                [
                    FieldError(
                        "message",
                        "is too long once sealed: Twilio takes URLs of at most "
                        f"{MAX_TWILIO_URL} characters",
                    )
                ]
            )
    row = ledger.new_row(caller_id, "call", request.to, settings.twilio_from_number)

    def create(status_callback: str) -> Created:
        return get_twilio_service().make_call(
            to=request.to,
            from_=settings.twilio_from_number,
            url=url,
            status_callback=status_callback,
            time_limit=settings.call_time_limit_seconds,
        )

    return _send(row, request.model_dump_json(by_alias=True), key, settings, create)


def _send(
    row: ledger.Row,
    canonical_body: str,
    key: str | None,
    settings: Settings,
    create: Callable[[str], Created],
    follows: Follows | None = None,
) -> Answer:
    """Admit the send, ask Twilio, record the outcome. `follows` is what a send Twilio
    accepted leads to: a read made with admission, and the writes made with the row's."""
    used = None
    if key is not None:  # the ledger row is the key's claim
        print_ = idempotency.fingerprint(row.kind, canonical_body)
        used = idempotency.Key(row.caller, key, print_, settings.idempotency_ttl_hours)
    held = admit(row, settings, used, also=follows[0] if follows else None)
    if held is not None and not held.owned:
        return _settle_earlier(held)
    try:
        created = create(f"{settings.public_base_url}/api/status?ref={row.ref}")
    except AhoyError as error:
        _record_failure(row, error)
        raise
    answer = _accepted(created)

    # At once: the row with its answer (one write; its SID index comes with the first
    # callback), and what follows from the send (a conversation), retried while storage is
    # down. Neither failing hides from the caller that Twilio has it.
    record = [
        lambda: ledger.record_status(
            row.ref, sid=created.sid, status=created.status, known=row, answer=answer, index=False
        )
    ]
    followers = follows[1](created) if follows else []
    recorded, *followed = at_once(
        [*record, *(_kept_trying(f, f"what follows {row.kind} {row.ref}") for f in followers)]
    )
    if isinstance(recorded, AhoyError):
        # The row stays `pending`: a retry with the key finds the send in Twilio's list (see
        # _settle_earlier), never sends it again.
        log.error(
            "%s %s accepted by Twilio but not recorded (%s)", row.kind, created.sid, recorded.slug
        )
    for failed in followed:
        if isinstance(failed, AhoyError):
            log.error("%s %s: what follows it failed (%s)", row.kind, created.sid, failed.slug)
    log.info("%s %s to %s accepted by Twilio", row.kind, created.sid, mask(row.to))
    return answer


def _kept_trying(work: Callable[[], object], what: str) -> Callable[[], None]:
    return lambda: keep_trying(work, what)


def _record_failure(row: ledger.Row, error: AhoyError) -> None:
    """Record why the send failed. Storage failing too never hides Twilio's error from the
    caller: what is left to write is written once storage is back."""
    if isinstance(error, UpstreamTimeout) or (
        isinstance(error, UpstreamError) and error.outcome_unknown
    ):
        # Twilio may have acted on it: keep the key held so a retry reconciles, never resends.
        keep_trying(lambda: ledger.set_state(row.ref, "unknown", error.code), "recording")
        log.warning("%s to %s: outcome unknown (%s)", row.kind, mask(row.to), error.slug)
    elif isinstance(error, ClientError) or (
        isinstance(error, UpstreamError) and not isinstance(error, UpstreamUnreachable)
    ):
        # Twilio refused it: final, and replayed as it is for the same key.
        answer = Answer.of_problem(problem_for(error))

        keep_trying(
            lambda: ledger.set_state(row.ref, "failed", error.code, answer), "recording a refusal"
        )
    else:
        # Never sent (Twilio unreachable, rate limiting us, rejecting our credentials).
        keep_trying(
            lambda: ledger.set_state(row.ref, "failed", error.code, release=True),
            "releasing a key",
        )


def _settle_earlier(held: idempotency.Claim) -> Answer:
    """Answer a request whose key an earlier request holds."""
    row = ledger.get(held.ref)
    if row is not None and row.answer is not None:
        return row.answer.as_replay()
    abandoned = (
        row is not None and row.state == "pending" and clock.now() - row.created > IN_FLIGHT_LIMIT
    )
    if row is not None and (row.state == "unknown" or abandoned):
        outcome = _reconcile(row)
        if isinstance(outcome, Created):
            answer = _accepted(outcome)
            row = ledger.record_status(
                row.ref, sid=outcome.sid, status=outcome.status, answer=answer
            )
        elif outcome is NOTHING and abandoned and ledger.delete(row):
            # No request is working on it any more and Twilio has nothing like it: storage
            # failed before Twilio was asked. Free the key: the next retry sends.
            raise Conflict(
                "The first request with this Idempotency-Key never reached Twilio; the key is "
                "free again. Retry now.",
                retry_after=1,
            )
        elif outcome is AMBIGUOUS:
            # Several sends like it, or Twilio's list could not be read: the key stays held
            # (a second send is worse than none), the row marked so that later retries ask again.
            if abandoned:
                keep_trying(lambda: ledger.set_state(row.ref, "unknown"), "recording")
            raise Conflict(
                "The outcome of the first request with this Idempotency-Key is not known yet: "
                "Twilio has more than one send like it, or could not be asked, and they cannot "
                "be told apart. Nothing was resent. Check GET /api/messages or /api/calls by "
                "SID if you kept one; retry later, or use a new key to send anyway.",
                retry_after=UNKNOWN_RETRY_AFTER,
            )
    if row is not None and row.state == "sent" and row.sid:
        answer = row.answer or _accepted_row(row)
        if row.answer is None:  # the send's own write after Twilio never landed: keep this one
            ledger.record_status(row.ref, sid=row.sid, status=row.status or "", answer=answer)
        return answer.as_replay()
    if row is not None and row.state == "unknown":
        raise Conflict(
            "The outcome of the first request with this Idempotency-Key is not known yet; "
            "nothing was resent. Retry later, or use a new key to send anyway.",
            retry_after=UNKNOWN_RETRY_AFTER,
        )
    raise Conflict(
        "A request with this Idempotency-Key is still in flight.",
        retry_after=IN_FLIGHT_RETRY_AFTER,
    )


class _Outcome:
    """What Twilio's lists say of a send (see _reconcile)."""

    def __init__(self, name: str) -> None:
        self.name = name


NOTHING = _Outcome("nothing")  # Twilio has nothing like it: the only outcome that frees a key
AMBIGUOUS = _Outcome("ambiguous")  # several like it, or the list could not be read


def _reconcile(row: ledger.Row) -> Created | _Outcome:
    """The resource in Twilio's lists that this row created, when exactly one can be it: sent
    through the REST API (not a reply, a <Dial> leg or inbound), to the row's number from its
    sender, created while the row's request could have asked, and for SMS with its body."""
    since, until = row.created - RECONCILE_SLACK, row.created + SEND_WINDOW + RECONCILE_SLACK
    service = get_twilio_service()
    try:
        if row.kind == "sms":
            sender = row.from_ if row.from_ and row.from_.startswith("+") else None
            candidates = service.find_messages(to=row.to, from_=sender, since=since, until=until)
            # A body Twilio changed (a trial account's prefix, a redaction) matches no hash:
            # such a candidate keeps the outcome ambiguous, never "nothing".
            found = [f.created for f in candidates if _hash(f.body) == row.body_hash]
        else:
            to, from_ = row.to, row.from_ or ""
            candidates = service.find_calls(to=to, from_=from_, since=since, until=until)
            found = [f.created for f in candidates]
    except AhoyError as error:
        log.warning("reconciling %s failed (%s)", row.ref, error.slug)
        return AMBIGUOUS
    if len(found) == 1:
        return found[0]
    return NOTHING if not candidates else AMBIGUOUS


def _accepted(created: Created) -> Answer:
    resource = Resource(
        sid=created.sid,
        status=created.status,
        to=created.to,
        from_=created.from_,
        date_created=created.date_created,
    )
    return Answer(201, resource.model_dump_json(by_alias=True))


def _accepted_row(row: ledger.Row) -> Answer:
    return _accepted(Created(row.sid or "", row.status or "", row.to, row.from_, row.created))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
