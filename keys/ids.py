"""The id grammars every format and program shares: desk ids, 32-hex ids and UTC days.

One definition each, so that the keyring, the bundles, the signed staff requests, the
server's routes and the client's vault cannot drift apart. Each grammar is given three
ways: the pattern text (for places that take a pattern, such as an aiohttp route), the
compiled pattern (always used with ``fullmatch``: ``match`` would accept a prefix and
``$`` a trailing newline), and a checking function that takes any value, so that a
field parsed from JSON can be checked without a separate ``isinstance``.

The patterns are written with explicit ASCII classes: ``\\d`` would also match
Arabic-Indic and other Unicode digits.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Final, TypeGuard

__all__ = [
    "DAY_PATTERN",
    "DAY_RE",
    "DESK_ID_PATTERN",
    "DESK_ID_RE",
    "HEX_ID_PATTERN",
    "HEX_ID_RE",
    "is_day",
    "is_desk_id",
    "is_hex_id",
    "new_hex_id",
    "parse_day",
]

# A desk id: what keys.keyring has always accepted (lower-case ASCII letters, digits and
# '-', 1 to 32 of them). It appears in file names, URLs and signed headers unquoted.
DESK_ID_PATTERN: Final = "[a-z0-9-]{1,32}"
DESK_ID_RE: Final = re.compile(DESK_ID_PATTERN)

# A random id (report, file, reply, bundle, nonce): 128 bits as 32 lower-case hex digits.
HEX_ID_PATTERN: Final = "[0-9a-f]{32}"
HEX_ID_RE: Final = re.compile(HEX_ID_PATTERN)
_HEX_ID_BYTES: Final = 16

# A UTC day, YYYY-MM-DD: the finest time the programs store.
DAY_PATTERN: Final = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
DAY_RE: Final = re.compile(DAY_PATTERN)


def is_desk_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string that is a whole desk id."""
    return isinstance(value, str) and DESK_ID_RE.fullmatch(value) is not None


def is_hex_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string of exactly 32 lower-case hex digits."""
    return isinstance(value, str) and HEX_ID_RE.fullmatch(value) is not None


def new_hex_id() -> str:
    """A fresh random id (from ``secrets``) that :func:`is_hex_id` accepts."""
    return secrets.token_hex(_HEX_ID_BYTES)


def parse_day(value: object) -> dt.date:
    """The date a ``YYYY-MM-DD`` string names; ``ValueError`` for anything else.

    Stricter than ``date.fromisoformat``, which also takes ``20240101`` and
    ``2024-W01-1``: only the one spelling the programs write is read back.
    """
    if not isinstance(value, str) or not DAY_RE.fullmatch(value):
        raise ValueError("a day must be written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value} is not a real date") from None


def is_day(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a ``YYYY-MM-DD`` string naming a real date."""
    try:
        parse_day(value)
    except ValueError:
        return False
    return True
