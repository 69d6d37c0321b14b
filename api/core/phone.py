"""Phone numbers: strict E.164 parsing, the destination policy, and masking for logs."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from api.core.errors import DestinationNotPermitted
from api.core.settings import E164, Settings

TWILIO_TEST_NUMBER_PREFIX = "+1500555"


@dataclass(frozen=True)
class DestinationPolicy:
    """Where calls and messages may go: ALLOWED_COUNTRIES x ALLOWED_NUMBER_TYPES.

    Applied to every number Ahoy dials or texts, after the format checks. Twilio's magic test
    numbers (+1500555xxxx) pass only in sandbox mode.
    """

    countries: frozenset[str]
    number_types: frozenset[str]
    allow_test_numbers: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> DestinationPolicy:
        return cls(settings.allowed_countries, settings.allowed_number_types, settings.sandbox)

    def check(self, number: str) -> None:
        """Raise DestinationNotPermitted (403) unless `number` (strict E.164) may be reached."""
        if number.startswith(TWILIO_TEST_NUMBER_PREFIX):
            if self.allow_test_numbers:
                return
            raise DestinationNotPermitted("Twilio test numbers are allowed in sandbox mode only.")
        parsed = phonenumbers.parse(number)
        region = phonenumbers.region_code_for_number(parsed) or "unknown"
        if region not in self.countries:
            raise DestinationNotPermitted(f"Destinations in region {region} are not permitted.")
        kind = _NUMBER_TYPE_NAMES.get(phonenumbers.number_type(parsed), "UNKNOWN")
        if kind not in self.number_types:
            raise DestinationNotPermitted(f"{kind} numbers are not permitted as destinations.")


_NUMBER_TYPE_NAMES = {
    getattr(phonenumbers.PhoneNumberType, name): name
    for name in dir(phonenumbers.PhoneNumberType)
    if name.isupper()
}


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
