"""Strict parsing of the documents a desk receives: reports and follow-ups.

The intake server writes these (docs/report-format.md); the client parses them as
hostile input and never imports the server's code to do it. A document is accepted
only if it is at most 1 MiB of valid UTF-8 JSON, nested at most 8 levels, with no
duplicate keys, no NaN/Infinity, no lone surrogates, exactly the known fields with the
expected types and bounds. Anything else raises :class:`DocumentError` with a message
that names the field, and the importer quarantines the item.

Free text (description, indicators …) may contain anything a person can type,
including HTML and control characters: it is stored as written, and shown escaped
(journalist_client.display). Codes (category, country …) must match their patterns.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any, Final

from journalist_client.taxonomy import CATEGORIES
from keys import ids, media, strict_json
from keys.age import parse_recipient

__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_DOCUMENT_BYTES",
    "DocumentError",
    "parse_document",
    "parse_json",
]

MAX_DOCUMENT_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 8
# The server's max_files is a setting (default 20); a bundle holds 4096 files at most.
MAX_ATTACHMENTS: Final = 1000
MAX_LIST: Final = 64

REPORT_SCHEMA: Final = "amana.report"
FOLLOWUP_SCHEMA: Final = "amana.followup"

_COUNTRY_RE: Final = re.compile(r"[A-Z]{2}")
_SHA_RE: Final = re.compile(r"[0-9a-f]{64}")
_LANGS: Final = frozenset({"en", "ar", "fr"})
# The closed choices of docs/report-format.md ("" is "not answered").
_TARGETS: Final = frozenset({"", "self", "other_person", "organisation"})
_PROFESSIONS: Final = frozenset({
    "", "journalist", "media_worker", "hrd", "lawyer", "activist", "ngo_staff", "researcher",
    "exiled_dissident", "family_member", "other", "undisclosed",
})
_PLATFORMS: Final = frozenset(
    {"ios", "android", "windows", "macos", "linux", "web", "other", "unknown"}
)
_COUNTRY_WORDS: Final = frozenset({"", "elsewhere", "undisclosed"})


class DocumentError(ValueError):
    """The document is not a valid report or follow-up; the message says why."""


def parse_json(raw: bytes) -> Any:
    """Bytes → JSON value, refusing everything a lenient parser would let through."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return strict_json.loads(raw, max_bytes=MAX_DOCUMENT_BYTES, max_depth=MAX_DEPTH)
    except strict_json.StrictJSONError as e:
        raise DocumentError(f"document: {e}") from None


def _fields(obj: Any, where: str, required: frozenset[str],
            optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DocumentError(f"{where} must be a JSON object")
    unknown = set(obj) - required - optional
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in sorted(unknown)[:5])
        raise DocumentError(f"{where}: unknown field(s) {shown}")
    missing = required - set(obj)
    if missing:
        raise DocumentError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
    return obj


def _str(v: Any, where: str, max_chars: int = MAX_DOCUMENT_BYTES) -> str:
    if not isinstance(v, str):
        raise DocumentError(f"{where} must be a string, not {_type(v)}")
    if len(v) > max_chars:
        raise DocumentError(f"{where} is longer than {max_chars} characters")
    return v


def _match(v: Any, where: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(v, str) or not pattern.fullmatch(v):
        raise DocumentError(f"{where} must be {what}")
    return v


def _choice(v: Any, where: str, choices: frozenset[str]) -> str:
    if not isinstance(v, str) or v not in choices:
        shown = ", ".join(sorted(c or "(empty)" for c in choices))
        raise DocumentError(f"{where} must be one of: {shown}")
    return v


def _list(
    v: Any, where: str, item: Callable[[Any, str], Any], max_len: int = MAX_LIST
) -> list[Any]:
    if not isinstance(v, list):
        raise DocumentError(f"{where} must be a list, not {_type(v)}")
    if len(v) > max_len:
        raise DocumentError(f"{where} has more than {max_len} entries")
    out = [item(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if len(set(map(json.dumps, out))) != len(out):
        raise DocumentError(f"{where} lists an entry twice")
    return out


def _bool(v: Any, where: str) -> bool:
    if type(v) is not bool:
        raise DocumentError(f"{where} must be true or false, not {_type(v)}")
    return v


def _int(v: Any, where: str) -> int:
    if type(v) is not int or v < 0 or v > 2**53 - 1:
        raise DocumentError(f"{where} must be a non-negative integer")
    return v


def _day(v: Any, where: str) -> str:
    _match(v, where, ids.DAY_RE, "a YYYY-MM-DD day")
    try:
        dt.date.fromisoformat(v)
    except ValueError:
        raise DocumentError(f"{where} is not a real date") from None
    return str(v)


def _type(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            int: "a number", float: "a number", type(None): "null"}.get(type(v), "?")


def _recipient(v: Any, where: str) -> str:
    text = _str(v, where, 4096)
    try:
        canonical = str(parse_recipient(text))
    except (ValueError, TypeError):
        raise DocumentError(f"{where} is not an age recipient") from None
    if canonical != text:
        raise DocumentError(f"{where} is not in canonical form")
    return text


def _category(v: Any, where: str) -> str:
    # isinstance first: a list or object is unhashable and would raise TypeError.
    if not isinstance(v, str) or v not in CATEGORIES:
        raise DocumentError(f"{where} must be one of the taxonomy's top-level codes")
    return str(v)


def _attachment(v: Any, where: str) -> dict[str, Any]:
    a = _fields(v, where, frozenset({"file_id", "name", "media_type", "size", "sha256"}))
    _match(a["file_id"], f"{where}.file_id", ids.HEX_ID_RE, "32 lower-case hex digits")
    name = _str(a["name"], f"{where}.name", 255)
    if not name or len(name.encode("utf-8")) > 255:
        raise DocumentError(f"{where}.name must be 1 to 255 bytes")
    # The rule the server records types by (keys.media): a claim, shown, never acted on.
    _match(a["media_type"], f"{where}.media_type", media.MEDIA_TYPE_RE,
           "a media type like text/plain (keys.media)")
    _int(a["size"], f"{where}.size")
    _match(a["sha256"], f"{where}.sha256", _SHA_RE, "64 lower-case hex digits")
    return a


_ANSWERS: Final = frozenset({
    "category", "secondary_categories", "country", "incident_date", "description",
    "indicators", "target", "profession", "platforms", "device_details", "consent",
})
_COMMON: Final = frozenset({
    "schema", "version", "submission_id", "received_day", "language", "desks",
    "reply_recipient", "attachments",
})
# Written by a server whose keyring is post-quantum (docs/report-format.md).
_OPTIONAL: Final = frozenset({"reply_recipient_pq"})


def _answers(v: Any, where: str) -> None:
    a = _fields(v, where, _ANSWERS)
    _category(a["category"], f"{where}.category")
    _list(a["secondary_categories"], f"{where}.secondary_categories", _category)
    if not isinstance(a["country"], str) or a["country"] not in _COUNTRY_WORDS:
        _match(a["country"], f"{where}.country", _COUNTRY_RE, "an ISO 3166 alpha-2 code")
    _str(a["incident_date"], f"{where}.incident_date", 200)
    _str(a["description"], f"{where}.description")
    ind = _fields(a["indicators"], f"{where}.indicators",
                  frozenset({"links", "senders", "messages"}))
    for k in ("links", "senders", "messages"):
        _str(ind[k], f"{where}.indicators.{k}")
    _choice(a["target"], f"{where}.target", _TARGETS)
    _choice(a["profession"], f"{where}.profession", _PROFESSIONS)
    _list(a["platforms"], f"{where}.platforms", lambda v, w: _choice(v, w, _PLATFORMS))
    _str(a["device_details"], f"{where}.device_details", 1000)
    consent = _fields(a["consent"], f"{where}.consent",
                      frozenset({"share_within_coalition", "publish_anonymised"}))
    for k in consent:
        _bool(consent[k], f"{where}.consent.{k}")


def _referral(v: Any, where: str) -> None:
    r = _fields(v, where, frozenset({"from_desk", "day", "note"}))
    _match(r["from_desk"], f"{where}.from_desk", ids.DESK_ID_RE, "a desk id")
    _day(r["day"], f"{where}.day")
    _str(r["note"], f"{where}.note", 64 * 1024)


def parse_document(raw: bytes, *, expected_type: str) -> dict[str, Any]:
    """Validate a decrypted document; ``expected_type`` is the index's ``report``/``followup``."""
    doc = parse_json(raw)
    if not isinstance(doc, dict):
        raise DocumentError("document must be a JSON object")
    schema = doc.get("schema")
    if expected_type == "report":
        _fields(doc, "document", _COMMON | {"answers"}, _OPTIONAL | {"referral"})
        if schema != REPORT_SCHEMA:
            raise DocumentError(f"schema must be {REPORT_SCHEMA!r} for a report")
        _answers(doc["answers"], "answers")
        if "referral" in doc:
            _referral(doc["referral"], "referral")
    elif expected_type == "followup":
        _fields(doc, "document", _COMMON | {"message"}, _OPTIONAL)
        if schema != FOLLOWUP_SCHEMA:
            raise DocumentError(f"schema must be {FOLLOWUP_SCHEMA!r} for a follow-up")
        _str(doc["message"], "message")
    else:
        raise DocumentError(f"unknown item type {expected_type[:20]!r}")
    if type(doc["version"]) is not int or doc["version"] != 1:
        raise DocumentError("version must be 1")
    _match(doc["submission_id"], "submission_id", ids.HEX_ID_RE, "32 lower-case hex digits")
    _day(doc["received_day"], "received_day")
    if not isinstance(doc["language"], str) or doc["language"] not in _LANGS:
        raise DocumentError("language must be en, ar or fr")
    desks = _list(doc["desks"], "desks",
                  lambda v, w: _match(v, w, ids.DESK_ID_RE, "a desk id"), 256)
    if not desks:
        raise DocumentError("desks must name at least one desk")
    if _recipient(doc["reply_recipient"], "reply_recipient").startswith("age1pq1"):
        raise DocumentError("reply_recipient must be an X25519 recipient (age1…)")
    if "reply_recipient_pq" in doc and not _recipient(
            doc["reply_recipient_pq"], "reply_recipient_pq").startswith("age1pq1"):
        raise DocumentError("reply_recipient_pq must be a post-quantum recipient (age1pq1…)")
    _list(doc["attachments"], "attachments", _attachment, MAX_ATTACHMENTS)
    return doc
