"""Find indicator candidates in text people paste: Arabic, French and English.

Scope: a string in, :class:`Candidate` values out (URLs, domains, emails, IPv4
addresses, phone numbers, md5/sha1/sha256 hashes). Nothing is looked up, resolved or
expanded: a shortened link is a candidate as given.

Before searching, a copy of the text is prepared:

* bidirectional marks (LRM, RLM, ALM, embeddings, isolates) become spaces, so the
  marks an Arabic editor puts around a Latin link delimit it; zero-width characters
  are removed;
* NFKC folds full-width letters and the ideographic full stops that IDNA treats as dots;
* a space is put between Arabic-script and Latin letters, which IDNA never lets share a
  label (``الرابطevil.com`` → ``الرابط evil.com``);
* defanging is undone: ``hxxp(s)``, ``[.]``, ``(.)``, ``{.}``, ``[dot]``, ``(dot)``,
  ``[at]``, ``(at)``, ``[@]``, ``[:]``.

Hosts are returned as A-labels (:func:`normalise_domain`). Phone numbers: every Unicode
decimal digit (Arabic-Indic too) becomes ASCII; a number written with ``+`` or ``00``
is returned as ``+`` and its digits (the country prefix as given); a local number
(starting with one ``0``) is returned as its digits, with no country assumed, because
the text does not say which country. Phone numbers are candidates for the triager; no
STIX key MVT understands holds one, so the matcher does not look them up.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum

from journalist_client.iocs.normalise import normalise_domain, normalise_url_and_host

__all__ = ["MAX_TEXT_CHARS", "Candidate", "CandidateKind", "ExtractError", "extract", "refang"]

# Report fields are bounded by the server; attachments are cut to this by the caller.
MAX_TEXT_CHARS = 4 * 1024 * 1024


class ExtractError(ValueError):
    """The text is larger than :data:`MAX_TEXT_CHARS`."""


class CandidateKind(StrEnum):
    URL = "url"
    DOMAIN = "domain"
    EMAIL = "email"
    IPV4 = "ipv4"
    PHONE = "phone"
    HASH = "hash"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A normalised value found in text, with the text it came from."""

    kind: CandidateKind
    value: str
    raw: str
    # A URL's normalised host, worked out with the URL (the matcher needs it).
    host: str | None = field(default=None, compare=False)


_BIDI = dict.fromkeys(
    [0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)], " "
)
_ZERO_WIDTH = dict.fromkeys([0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD], None)
_TRANSLATE: dict[int, str | None] = {**_BIDI, **_ZERO_WIDTH, 0x3002: ".", 0xFF61: "."}
# str.translate looks up every character; a character class finds the few to change.
_SPECIAL = re.compile("[" + "".join(re.escape(chr(c)) for c in _TRANSLATE) + "]")

# Every expression below begins with a character class, its look-behind placed after
# that first character: the engine then skips in C to the next position where that
# class matches instead of trying the assertion at every character (3-4x faster on
# prose). The plain forms they are equivalent to are in the tests
# (iocs_tests/test_match_extract.py), which compare the two on generated text.
_ARABIC = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"
# An Arabic-script letter with a Latin letter or digit before or after it (rare).
_SCRIPT_BREAK = re.compile(rf"[{_ARABIC}](?:(?<=[A-Za-z0-9].)|(?=[A-Za-z0-9]))")
_LATIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

_SCHEME = re.compile(r"h(?<!\wh)(?:xx|\*\*|tt)p(s?)(?:\[:\]|:)//", re.IGNORECASE)
# A defanging bracket; one whitespace character on each side goes with it.
_BRACKETED = re.compile(r"[\[({]\s*(\.|dot|@|at|:)\s*[\])}]\s?", re.IGNORECASE)
_UNBRACKET = {".": ".", "dot": ".", "@": "@", "at": "@", ":": ":"}

# Characters that end a URL in running text: whitespace, quotes, brackets, French
# guillemets, Arabic comma/semicolon/question mark.
_URL = re.compile(r"""\b(?:https?|ftp)://[^\s<>"'`«»“”‘’()\[\]{}،؛؟|\\^]+""", re.IGNORECASE)
_URL_TRAILING = ".,;:!?*~'\"-_"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_TLD = r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})"
_HOST = rf"(?:{_LABEL}\.)+{_TLD}"
# The look-ahead (possessive: no backtracking) refuses a word with no dot after it in
# one pass, before the label expression would try every shorter length of it.
_DOMAIN = re.compile(rf"(?<![\w.-])(?=[\w-]*+\.)({_HOST})(?![\w-])", re.IGNORECASE)
_EMAIL = re.compile(rf"(?<![\w.+-])(?=[\w.+-]{{1,64}}+@)([\w.+-]{{1,64}})@({_HOST})(?![\w-])",
                    re.IGNORECASE)
# Not glued to a longer token ("not1.2.3.4", "1.2.3.4.5", "1.2.3.4.evil.net");
# a full stop may end it.
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\w|\.\w)", re.ASCII)
# A whole word of hex digits (the three lengths are checked after the match).
_HASH = re.compile(r"[0-9A-Fa-f](?<!\w[0-9A-Fa-f])[0-9A-Fa-f]{31,63}+\b")
_HASH_LENGTHS = frozenset({32, 40, 64})
# "+" and a digit, "00" and a digit, or a digit; in that order, as the plain form
# (?<![\w+])(?:\+|00)?\d... tries them.
_PHONE = re.compile(r"(?:\+(?<![\w+]\+)\d|0(?<![\w+]0)0\d|\d(?<![\w+]\d))"
                    r"[\d \u00a0().-]{6,20}\d(?!\w)")


def _script_break(m: re.Match[str]) -> str:
    text, start = m.string, m.start()
    before = start > 0 and text[start - 1] in _LATIN
    after = text[start + 1:start + 2] in _LATIN
    return (" " if before else "") + m.group() + (" " if after else "")


def _scheme(m: re.Match[str]) -> str:
    return "https://" if m.group(1) else "http://"


def _unbracket(text: str) -> str:
    """Undo bracketed defanging; a whitespace character just before a bracket goes too
    (unless the previous bracket's trailing one already took it)."""
    out: list[str] = []
    kept = 0
    for m in _BRACKETED.finditer(text):
        start = m.start()
        if start > kept and text[start - 1].isspace():
            start -= 1
        out += (text[kept:start], _UNBRACKET[m.group(1).lower()])
        kept = m.end()
    if not out:
        return text
    out.append(text[kept:])
    return "".join(out)


def _prepare(text: str) -> str:
    text = _SPECIAL.sub(lambda m: _TRANSLATE[ord(m.group())] or "", text)
    text = unicodedata.normalize("NFKC", text)
    text = _SCRIPT_BREAK.sub(_script_break, text)
    # Each "//" a scheme match ends with is counted once by str.count (a ":" or "]" is
    # before it); if every one belongs to a plain "http://" or "https://", which the
    # substitution leaves as they are, there is nothing to substitute (most texts with
    # links, and every device record).
    slashes = text.count("//")
    if slashes and slashes != text.count("http://") + text.count("https://"):
        text = _SCHEME.sub(_scheme, text)
    if "[" in text or "(" in text or "{" in text:
        text = _unbracket(text)
    return text


def refang(text: str) -> str:
    """``text`` as :func:`extract` reads it: defanging undone, marks and scripts apart."""
    return _prepare(text)


def _phone(raw: str) -> str | None:
    raw = raw.strip()
    # Only "+" or a zero (in any script) can begin a number we keep; dates and
    # counters, which the pattern also finds, stop here.
    first = raw[:1]
    if first != "+" and not (first.isdecimal() and unicodedata.digit(first) == 0):
        return None
    raw = "".join(str(unicodedata.digit(c)) if c.isdecimal() else c for c in raw.strip())
    digits = "".join(c for c in raw if c.isdecimal())
    if raw.startswith("+"):
        international = digits
    elif raw.startswith("00"):
        international = digits[2:]
    elif raw.startswith("0"):
        return digits if 8 <= len(digits) <= 12 else None
    else:
        return None
    return "+" + international if 8 <= len(international) <= 15 else None


def extract(text: str, *, phones: bool = True) -> list[Candidate]:
    """Every candidate in ``text``, in order of kind then position, without repeats.

    ``phones=False`` leaves phone numbers out (the matcher, which has no indicator
    kind to look them up in, saves that search).
    """
    if len(text) > MAX_TEXT_CHARS:
        raise ExtractError(f"text of {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    prepared = _prepare(text)
    found: dict[tuple[CandidateKind, str], Candidate] = {}

    def add(kind: CandidateKind, value: str | None, raw: str) -> None:
        if value is not None:
            found.setdefault((kind, value), Candidate(kind, value, raw))

    url_spans: list[tuple[int, int]] = []
    for m in _URL.finditer(prepared):
        raw = m.group().rstrip(_URL_TRAILING)
        both = normalise_url_and_host(raw)
        if both is not None:
            found.setdefault((CandidateKind.URL, both[0]),
                             Candidate(CandidateKind.URL, both[0], raw, both[1]))
        url_spans.append(m.span())
    for m in _EMAIL.finditer(prepared) if "@" in prepared else ():
        domain = normalise_domain(m.group(2))
        add(CandidateKind.EMAIL, f"{m.group(1).lower()}@{domain}" if domain else None, m.group())
    # Names outside URLs (a URL's host is checked as part of the URL). One finditer
    # pass would also match inside every URL, only to drop those matches; instead
    # each stretch between two URLs is searched on its own, and only if it holds a
    # dot. This finds the same names: a match starting inside a URL ends by the URL's
    # end (no character that ends a URL can be in a name); the first match at or after
    # a position does not depend on where the search started (look-behinds see the
    # text before it); and a name starting before a URL has its first dot before the
    # URL too (a URL begins with letters and ":", which no label or dot crosses).
    search = _DOMAIN.search
    position = 0
    for start, end in (*url_spans, (len(prepared), len(prepared))):
        if prepared.find(".", position, start) != -1:
            hit = search(prepared, position)
            while hit is not None and hit.start() < start:
                add(CandidateKind.DOMAIN, normalise_domain(hit.group(1)), hit.group(1))
                position = hit.end()
                hit = search(prepared, position)
        position = max(position, end)
    for m in _IPV4.finditer(prepared):
        try:
            address = str(ipaddress.IPv4Address(m.group()))
        except ValueError:
            continue
        add(CandidateKind.IPV4, address, m.group())
    for m in _HASH.finditer(prepared):
        if len(m.group()) in _HASH_LENGTHS:
            add(CandidateKind.HASH, m.group().lower(), m.group())
    for m in _PHONE.finditer(prepared) if phones else ():
        raw = m.group()
        if _IPV4.fullmatch(raw.strip()):
            continue
        add(CandidateKind.PHONE, _phone(raw), raw)
    return list(found.values())
