"""Strict JSON for everything that crosses a trust boundary.

Python's json module accepts what other parsers read differently: duplicate keys (the
last one wins here, the first elsewhere), NaN and Infinity, lone surrogates, and nesting
deep enough to exhaust the recursion limit. Two readers that disagree about a document
are how a signed manifest can say one thing to the signer and another to the reader, so
every JSON document Amana reads from the other side goes through :func:`loads`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["StrictJSONError", "loads"]

# A string runs to its closing quote or, unterminated, to the end of the text: either way
# the scan moves past it once, so the check stays linear on hostile input.
_BRACKETS: Final = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\Z)|[\[\]{}]', re.DOTALL)


class StrictJSONError(ValueError):
    """The bytes are not one strict JSON document within the bounds; says why."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise StrictJSONError(f"duplicate JSON key {key[:40]!r}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> None:
    raise StrictJSONError(f"invalid JSON number {name}")


def _check_depth(text: str, max_depth: int) -> None:
    # Counted before json.loads, in linear time, so that a deeply nested document is
    # refused instead of exhausting the parser's recursion.
    depth = 0
    for m in _BRACKETS.finditer(text):
        bracket = m.group()
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise StrictJSONError(f"JSON nested deeper than {max_depth} levels")
        elif bracket in "]}":
            depth -= 1


def _no_surrogates(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJSONError("text contains a lone surrogate (\\ud800-\\udfff)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_surrogates(k)
            _no_surrogates(v)
    elif isinstance(value, list):
        for v in value:
            _no_surrogates(v)


def loads(raw: bytes, *, max_bytes: int, max_depth: int = 16) -> Any:
    """Bytes → a JSON value: strict UTF-8, bounded size and depth, no duplicate keys,
    no NaN/Infinity, no lone surrogates, no numbers of more than 4,300 digits."""
    if len(raw) > max_bytes:
        raise StrictJSONError(f"larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StrictJSONError(f"not valid UTF-8 (byte {e.start})") from None
    _check_depth(text, max_depth)
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except StrictJSONError:
        raise
    except json.JSONDecodeError as e:
        raise StrictJSONError(f"not valid JSON: {e.msg} at line {e.lineno}") from None
    except (ValueError, RecursionError) as e:
        # int() refuses more than 4,300 digits; recursion is bounded by _check_depth.
        raise StrictJSONError(f"not valid JSON: {str(e)[:80]}") from None
    _no_surrogates(value)
    return value
