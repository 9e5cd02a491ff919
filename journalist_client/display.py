"""Making hostile text inert before it reaches the triager's terminal.

Every string a source (or an attacker) wrote is passed through :func:`inert` before it
is printed. A terminal obeys escape sequences: ESC (and the C1 CSI/OSC introducers) can
move the cursor, rewrite earlier lines, change the window title, or on some terminals
write files; a carriage return or backspace can hide text; bidi overrides (U+202E …)
can make ``exe.pdf`` read as ``fdp.exe``. So C0 and C1 controls, DEL, bidi controls,
line/paragraph separators and unassigned or surrogate code points are replaced by a
visible ``\\x1b`` / ``\\u202e`` form. HTML needs no treatment in a terminal: it is shown
as the text it is (and any future UI must escape it again for its own medium).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["inert", "inert_block", "inert_json"]

# Directional formatting characters (Unicode TR9): embeddings, overrides, isolates, marks.
_BIDI: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _escape_char(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else (
        f"\\U{code:08x}"
    )


_JOINERS = frozenset({"\u200c", "\u200d"})


def _is_dangerous(c: str) -> bool:
    if c in _BIDI:
        return True
    cat = unicodedata.category(c)
    # Cc: C0, DEL, C1. Zl/Zp: U+2028/2029 break lines in some terminals. Cs: lone
    # surrogates (rejected on import, but never trust a single gate). Cn: unassigned.
    # Cf: invisible format characters (zero-width space, word joiner, BOM, soft hyphen,
    # tag characters) that hide text or make look-alike file names; ZWNJ and ZWJ stay,
    # as Persian and Arabic text and emoji need them.
    if cat == "Cf":
        return c not in _JOINERS
    return cat in ("Cc", "Zl", "Zp", "Cs", "Cn")


def inert(text: str, *, keep_newlines: bool = False, indent: str = "") -> str:
    """``text`` with every control, bidi and separator character shown escaped.

    With ``keep_newlines``, ``\\n`` stays a line break and every following line is
    prefixed by ``indent`` (so a forged line can never start at column 0); tabs stay.
    A backslash is doubled so that an escape written by the source can never be
    confused with one added here.
    """
    out: list[str] = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif keep_newlines and c == "\n":
            out.append("\n" + indent)
        elif keep_newlines and c == "\t":
            out.append("\t")
        elif _is_dangerous(c):
            out.append(_escape_char(c))
        else:
            out.append(c)
    return "".join(out)


def inert_block(text: str, indent: str = "    ") -> str:
    """A multi-line answer, indented, each line inert."""
    return indent + inert(text, keep_newlines=True, indent=indent)


def inert_json(document: str) -> str:
    """A JSON document with every character :func:`inert` would escape written as a
    ``\\uXXXX`` escape: the parsed data is exactly the same, but ``--json`` output shown
    on a terminal cannot act on it either (json.dumps escapes only C0 controls)."""
    return _BEYOND_ASCII.sub(_json_escape, document)


# json.dumps has escaped every C0 control already; DEL and everything above remain.
_BEYOND_ASCII: Final = re.compile(r"[^\x00-\x7e]")


def _json_escape(match: re.Match[str]) -> str:
    c = match.group()
    if not _is_dangerous(c):
        return c
    if ord(c) < 0x10000:
        return f"\\u{ord(c):04x}"
    # Outside the BMP, JSON spells a character as its UTF-16 surrogate pair.
    high, low = divmod(ord(c) - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"
