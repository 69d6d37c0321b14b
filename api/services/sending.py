"""The send: one owner for what every send passes, makeCall, sendSms or /api/voice.

In order: the Idempotency-Key (checked, then claimed with the ledger row: the only place a key
is handled); admission (the row, written before anything can be sent, and the send taken from
the limits, at once); Twilio; the outcome and the answer recorded on the row (a retry with the
key gets that answer back), at once with what the send leads to (a conversation). Twilio is
never asked twice for one key: when its answer was lost, a retry reconciles against Twilio's
own lists instead.

A send that is stopped at admission (a limit, or storage failing) leaves nothing behind: no
row, no claim, no count.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from api.core import clock
from api.core.answers import Answer
from api.core.errors import (
    AhoyError,
    ClientError,
    Conflict,
    StorageUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from api.core.phone import mask
from api.core.problems import problem_for
from api.core.settings import Settings, get_settings
from api.core.urls import webhook_url
from api.stores import idempotency, ledger, limits
from api.stores.idempotency import Claim
from api.stores.storage import at_once, keep_trying

if TYPE_CHECKING:  # the Twilio client and pydantic load on a send, not with /api/voice
    from api.stores.twilio_service import Created

    # What a send leads to: a read made with its admission, then writes made with its row's
    # own once Twilio has accepted it.
    Follows = tuple[Callable[[], None] | None, Callable[[Created], list[Callable[[], object]]]]

log = logging.getLogger("ahoy.sending")

RECONCILE_SLACK = timedelta(minutes=1)  # clock skew between Ahoy and Twilio
# A send's request asks Twilio within its lifetime: host.json's functionTimeout (30 s).
SEND_WINDOW = timedelta(seconds=30)
# Longer than any request can run (the function timeout is 30 s): a row still `pending` after
# it has no request working on it.
IN_FLIGHT_LIMIT = timedelta(minutes=2)
IN_FLIGHT_RETRY_AFTER = 2
UNKNOWN_RETRY_AFTER = 30


class Send:
    """One request to send: whose, which kind, its canonical body and its Idempotency-Key.

    Made first, so that a malformed key is a 422 before anything else is looked at."""

    def __init__(self, caller: str, kind: str, canonical_body: str, key: str | None) -> None:
        self.caller, self.kind = caller, kind
        self.key = (
            None
            if key is None
            else idempotency.Key(
                caller,
                idempotency.check_key(key),
                idempotency.fingerprint(kind, canonical_body),
                get_settings().idempotency_ttl_hours,
            )
        )

    def run(
        self,
        row: ledger.Row,
        create: Callable[[str], Created],
        follows: Follows | None = None,
        check: Callable[[], None] | None = None,
    ) -> Answer:
        """Admit `row`, ask Twilio (`create`, given the status callback URL), record the
        outcome. `follows` is what a send Twilio accepted leads to: a read made with
        admission, and the writes made with the row's. `check` refuses the send (raising
        AhoyError) at admission, as a full limit does."""
        settings = get_settings()
        also = follows[0] if follows else None
        held = admit(row, settings, self.key, also=also, check=check)
        if held is not None and not held.owned:
            return _settle_earlier(held)
        try:
            created = create(webhook_url(settings, f"/api/status?ref={row.ref}"))
        except AhoyError as error:
            _record_failure(row, error)
            raise
        return _record(row, created, follows)


def admit(
    row: ledger.Row,
    settings: Settings,
    key: idempotency.Key | None = None,
    also: Callable[[], None] | None = None,
    check: Callable[[], None] | None = None,
) -> Claim | None:
    """Record `row` (with the claim of `key`, when given) and take the send from the limits,
    all at once (with `also`, a read the send needs later, and `check`, which may refuse the
    send); RateLimited / ServiceUnavailable if a limit is full, what `check` raised if it
    refused. A refused send leaves nothing: its row is withdrawn, its limits given back.

    A key an earlier request holds wins: the limits are given back and its Claim returned.
    """
    record: Callable[[], Claim | None] = (
        (lambda: idempotency.claim(key, row)) if key else (lambda: ledger.insert(row))
    )
    # consume uses at_once itself: it goes first, in this thread (see at_once).
    checks = [check] if check else []
    results = at_once(
        [
            lambda: limits.consume(row.caller, row.to, settings),
            record,
            *checks,
            *([also] if also else []),
        ]
    )
    limited = cast("list[limits.Window] | AhoyError", results[0])
    recorded = cast("Claim | AhoyError | None", results[1])
    refused = next((r for r in results[2 : 2 + len(checks)] if isinstance(r, AhoyError)), None)
    taken = limited if isinstance(limited, list) else []
    if isinstance(recorded, AhoyError) or (recorded is not None and not recorded.owned):
        keep_trying(lambda: limits.give_back(taken), "giving back the limits")
        if isinstance(recorded, StorageUnavailable):  # the write may have landed all the same
            keep_trying(lambda: ledger.withdraw(row), f"withdrawing send {row.ref}")
        if isinstance(recorded, AhoyError):
            raise recorded
        return recorded
    refusal = refused or (limited if isinstance(limited, AhoyError) else None)
    if refusal is not None:
        keep_trying(lambda: ledger.withdraw(row), f"withdrawing send {row.ref}")
        if taken:
            keep_trying(lambda: limits.give_back(taken), "giving back the limits")
        log.info("%s to %s refused: %s", row.kind, mask(row.to), refusal.slug)
        raise refusal
    return recorded


def _record(row: ledger.Row, created: Created, follows: Follows | None) -> Answer:
    """What Twilio accepted, on the row (with the answer) and in what it leads to."""
    answer = _accepted(created)
    # At once: the row with its answer (one write; its SID index comes with the first
    # callback), and what the send leads to (a conversation), retried while storage is down.
    # Neither failing hides from the caller that Twilio has it.
    followers = follows[1](created) if follows else []
    recorded, *followed = at_once(
        [
            lambda: ledger.record_status(
                row.ref,
                sid=created.sid,
                status=created.status,
                known=row,
                answer=answer,
                index=False,
            ),
            *(_kept_trying(f, f"what follows {row.kind} {row.ref}") for f in followers),
        ]
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
        if not isinstance(outcome, _Outcome):
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
    from api.stores.twilio_service import get_twilio_service

    service = get_twilio_service()
    try:
        if row.kind == "sms":
            sender = row.from_ if row.from_ and row.from_.startswith("+") else None
            candidates = service.find_messages(to=row.to, from_=sender, since=since, until=until)
            # A body Twilio changed (a trial account's prefix, a redaction) matches no hash:
            # such a candidate keeps the outcome ambiguous, never "nothing".
            found = [f.created for f in candidates if hash_text(f.body) == row.body_hash]
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
    from api.core.models import Resource

    resource = Resource(
        sid=created.sid,
        status=created.status,
        to=created.to,
        from_=created.from_,
        date_created=created.date_created,
    )
    return Answer(201, resource.model_dump_json(by_alias=True))


def _accepted_row(row: ledger.Row) -> Answer:
    from api.stores.twilio_service import Created

    return _accepted(Created(row.sid or "", row.status or "", row.to, row.from_, row.created))


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
