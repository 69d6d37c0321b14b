"""What a message's delivery error code means to the person who sent it, and whether a retry
can help: the codes Twilio reports on a message that was accepted, then not delivered (its
status callbacks' ErrorCode). The README's table is this one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Explained:
    code: int
    title: str
    retryable: bool


_TABLE: dict[int, tuple[str, bool]] = {
    30001: ("Twilio's queue for this sender was full; try again shortly", True),
    30002: ("The Twilio account is suspended; the operator must contact Twilio", False),
    30003: ("The phone is off or out of coverage; try again later", True),
    30004: ("The recipient or their carrier blocked the message", False),
    30005: ("The number does not exist or is no longer in service", False),
    30006: ("The number is a landline or its carrier cannot receive SMS", False),
    30007: ("The carrier filtered the message as spam; change its content", False),
    30008: ("Delivery failed for an unknown reason; try again", True),
    30009: ("Part of a long message was lost; try again", True),
    30010: ("The message cost more than its maximum price", False),
    30018: ("The destination carrier needs the sender registered first", False),
    30022: ("Over the US 10DLC campaign's rate limit; try again later", True),
    30032: ("The toll-free sender is not verified; the operator must verify it", False),
    30034: (
        "The sender is not registered for US A2P 10DLC: the operator must register a brand "
        "and campaign and add this number to it",
        False,
    ),
    21610: ("The recipient opted out (texted STOP)", False),
}


def explain(code: int | None) -> Explained | None:
    """The explanation of `code` (None for no error); an unlisted code is not retried."""
    if not code:
        return None
    title, retryable = _TABLE.get(
        code, (f"Twilio error {code}: see https://www.twilio.com/docs/api/errors/{code}", False)
    )
    return Explained(code, title, retryable)


def table() -> dict[int, tuple[str, bool]]:
    return dict(_TABLE)
