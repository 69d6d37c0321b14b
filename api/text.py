"""Reading numbers out of text that callers and webhooks send.

`int()` accepts any Unicode decimal digit (`int("٣") == 3`) and `str.isdigit()` accepts
digits `int()` refuses (`"²"`), so integers are read from ASCII digits only.
"""

from __future__ import annotations

import re

_ASCII_DIGITS = re.compile(r"[0-9]{1,9}", re.ASCII)


def ascii_int(raw: str) -> int | None:
    """`raw` as an integer if it is 1 to 9 ASCII digits, else None."""
    return int(raw) if _ASCII_DIGITS.fullmatch(raw) else None
