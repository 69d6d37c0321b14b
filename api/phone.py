"""Phone numbers: strict E.164 parsing and masking for logs."""

from __future__ import annotations

import phonenumbers

from api.settings import E164


def parse_e164(value: str) -> str:
    """Return `value` if it is a strict, canonical E.164 number; raise ValueError otherwise.

    phonenumbers alone is lenient (it takes `tel:` prefixes, spaces, other digit scripts and
    extensions), so the exact shape is checked first and the canonical form must round-trip.
    """
    if not E164.fullmatch(value):
        raise ValueError("must be an E.164 number such as +14155550100")
    try:
        parsed = phonenumbers.parse(value)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("is not a phone number") from exc
    if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != value:
        raise ValueError("is not in canonical E.164 form")
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError("is not a possible phone number")
    return value


def mask(number: str) -> str:
    """`+14155550100` → `+1*******00`: the country code and last two digits, for logs."""
    if not number.startswith("+") or len(number) < 6:
        return "***"
    try:
        country = str(phonenumbers.parse(number).country_code)
    except phonenumbers.NumberParseException:
        country = number[1:2]
    return f"+{country}{'*' * (len(number) - len(country) - 3)}{number[-2:]}"
