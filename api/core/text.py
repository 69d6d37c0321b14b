"""Text as callers, webhooks and SMS see it.

`int()` accepts any Unicode decimal digit (`int("٣") == 3`) and `str.isdigit()` accepts
digits `int()` refuses (`"²"`), so integers are read from ASCII digits only.

An SMS body's length is counted as Twilio counts it against its 1,600 limit (error 21617:
characters outside GSM-7 "use more space"): in GSM-7 when every character is in that alphabet
(the extension's, such as `€` or `{`, take an escape and count two), else in UCS-2's UTF-16
units (an emoji counts two).
"""

from __future__ import annotations

import re

_ASCII_DIGITS = re.compile(r"[0-9]{1,9}", re.ASCII)
SMS_MAX_UNITS = 1600
# GSM 03.38: the basic set (one unit each) and its extension (an escape and the character).
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def ascii_int(raw: str) -> int | None:
    """`raw` as an integer if it is 1 to 9 ASCII digits, else None."""
    return int(raw) if _ASCII_DIGITS.fullmatch(raw) else None


def sms_length(body: str) -> int:
    """`body`'s length in the units Twilio's 1,600 limit counts (see the module)."""
    if all(c in _GSM7 or c in _GSM7_EXTENSION for c in body):
        return sum(2 if c in _GSM7_EXTENSION else 1 for c in body)
    return len(body.encode("utf-16-le")) // 2
