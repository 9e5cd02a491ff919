"""The records the library returns and the CLI prints: frozen, typed, JSON-ready.

Each command that shows something (``list``, ``show``, ``history``, ``search``,
``outbox``, ``quarantine``) gets these from one library function; the CLI prints them
either as text, with every source-written string made inert (journalist_client.display),
or with ``--json`` as one JSON document built by :func:`to_json`, where that text is
data. docs/client.md ("JSON output") lists every field; a test checks the two agree.

Text written by a source is held here raw, exactly as decrypted and validated.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from journalist_client.display import inert_json

__all__ = [
    "Answers",
    "Attachment",
    "Consent",
    "FamilyCount",
    "FollowUp",
    "HistoryEntry",
    "IndicatorFileInfo",
    "IndicatorListing",
    "IndicatorMatch",
    "Indicators",
    "ItemSummary",
    "MvtClaim",
    "Note",
    "OutboxEntry",
    "QuarantineEntry",
    "QuarantinedFile",
    "QuarantinedItem",
    "Referral",
    "Report",
    "SearchHit",
    "SeveritySuggestion",
    "ThreadEntry",
    "UnsupportedPattern",
    "to_json",
]


@dataclass(frozen=True)
class ItemSummary:
    """One line of ``list``: a report or a follow-up."""

    id: str
    type: Literal["report", "followup"]
    received_day: str
    status: str
    severity: str
    category: str  # the triager's category, else the reporter's own choice
    country: str
    # Published indicators found in it (journalist_client.indicators); for a report,
    # in its follow-ups too.
    matches: int


@dataclass(frozen=True)
class Attachment:
    n: int
    name: str
    media_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Indicators:
    links: str
    senders: str
    messages: str


@dataclass(frozen=True)
class Consent:
    share_within_coalition: bool
    publish_anonymised: bool


@dataclass(frozen=True)
class Answers:
    """The source's answers, as in the report document (docs/report-format.md)."""

    category: str
    secondary_categories: tuple[str, ...]
    country: str
    incident_date: str
    description: str
    indicators: Indicators
    target: str
    profession: str
    platforms: tuple[str, ...]
    device_details: str
    consent: Consent


@dataclass(frozen=True)
class Referral:
    from_desk: str
    day: str
    note: str


@dataclass(frozen=True)
class ThreadEntry:
    """A follow-up from the source or a reply by the desk, in the report's thread."""

    at: str
    kind: Literal["followup", "reply"]
    id: str
    author: str  # empty for the source
    body: str
    attachments: tuple[Attachment, ...]
    matches: int  # published indicators found in a follow-up (see its own `show`)


@dataclass(frozen=True)
class Note:
    at: str
    author: str
    text: str


@dataclass(frozen=True)
class HistoryEntry:
    at: str
    who: str
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class IndicatorMatch:
    """A published spyware indicator found in an item, and where (``show``).

    ``field`` is the report field ("description", "links" …, "attachment", or
    "attachment sha256" for the hash the server recorded); ``attachment`` the
    attachment's name; ``path`` the steps inside it (zip entries, MIME parts, JSON
    keys); ``device_output`` is true when it was found in forensic output of a device
    (MVT records). ``candidate`` is what the report held, raw.
    """

    value: str
    kind: str
    family: str
    source_file: str
    indicator_id: str
    stix_key: str
    references: tuple[str, ...]
    candidate: str
    how: str
    field: str
    attachment: str | None
    path: tuple[str, ...]
    device_output: bool


@dataclass(frozen=True)
class MvtClaim:
    """A detection the *reporter's* own MVT run wrote (``*_detected.json``, ``alerts.json``).

    Not ours: their indicators may be other or older ones. Every field is raw text
    from the attachment.
    """

    module: str
    level: str  # the v3 alert level; empty in v2 output
    message: str
    indicator_value: str
    indicator_type: str
    family: str
    stix2_file_name: str
    mvt_format: str
    field: str
    attachment: str | None
    path: tuple[str, ...]


@dataclass(frozen=True)
class SeveritySuggestion:
    """The severity the matches suggest (taxonomy), for the triager to confirm or override."""

    level: str
    confidence: str  # weak, strong-indicator or strong-device
    reason: str
    decision: str  # empty until decided, then "confirmed" or "overridden"


@dataclass(frozen=True)
class FamilyCount:
    family: str
    indicators: int
    unsupported: int


@dataclass(frozen=True)
class IndicatorFileInfo:
    """One imported indicator file (``iocs list``)."""

    name: str
    sha256: str
    imported_day: str
    indicators: int
    unsupported: int
    families: tuple[FamilyCount, ...]


@dataclass(frozen=True)
class UnsupportedPattern:
    """An indicator whose pattern the matcher cannot evaluate, kept and listed."""

    file: str
    indicator_id: str
    family: str
    pattern: str
    reason: str


@dataclass(frozen=True)
class IndicatorListing:
    """Everything ``iocs list`` shows: per file, per family across files, and (with
    ``--unsupported``) each pattern set aside."""

    files: tuple[IndicatorFileInfo, ...]
    families: tuple[FamilyCount, ...]
    unsupported: tuple[UnsupportedPattern, ...]


@dataclass(frozen=True)
class Report:
    """Everything ``show`` shows about a report."""

    id: str
    type: Literal["report"]
    received_day: str
    language: str
    desks: tuple[str, ...]
    status: str
    severity: str
    triage_category: str
    assignee: str
    tags: tuple[str, ...]
    answers: Answers
    referral: Referral | None
    attachments: tuple[Attachment, ...]
    thread: tuple[ThreadEntry, ...]
    notes: tuple[Note, ...]
    history: tuple[HistoryEntry, ...]
    # Referrals made although the source declined sharing (``refer --override-consent``),
    # from the history; shown with the report whether or not the history is.
    consent_overrides: tuple[HistoryEntry, ...]
    matches: tuple[IndicatorMatch, ...]
    claims: tuple[MvtClaim, ...]
    suggestion: SeveritySuggestion | None
    scan_problems: tuple[str, ...]  # what the indicator scan could not read, and why


@dataclass(frozen=True)
class FollowUp:
    """What ``show`` shows about a follow-up: its message and the report it joins."""

    id: str
    type: Literal["followup"]
    received_day: str
    report_id: str | None  # None when the report is not in this vault
    message: str
    attachments: tuple[Attachment, ...]
    matches: tuple[IndicatorMatch, ...]
    claims: tuple[MvtClaim, ...]
    scan_problems: tuple[str, ...]


@dataclass(frozen=True)
class SearchHit:
    id: str
    type: Literal["report", "followup"]
    received_day: str
    status: str
    snippet: str  # "label: … words [match] words …", raw


@dataclass(frozen=True)
class OutboxEntry:
    id: str
    type: Literal["reply", "referral"]
    item_id: str
    to_recipient: str  # the source's reply key (replies), else empty
    to_desk: str  # the desk referred to (referrals), else empty
    files: tuple[str, ...]
    at: str
    author: str
    bundle_id: str  # empty until bundled


@dataclass(frozen=True)
class QuarantineEntry:
    item_id: str
    type: str
    at: str
    reason: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class QuarantinedFile:
    """One ciphertext file of a quarantined item, as ``quarantine show`` describes it."""

    n: int  # 0 the document, 1… the attachments in order
    file: str  # its name in quarantine/
    size: int  # ciphertext bytes
    opens: bool  # its age header opens with this desk's key (the payload is not read)
    problem: str  # why it does not open, else empty


@dataclass(frozen=True)
class QuarantinedItem:
    """Everything ``quarantine show`` tells about one quarantined item; never its content."""

    item_id: str
    type: str
    at: str
    reason: str
    bundle_id: str
    files: tuple[QuarantinedFile, ...]


def to_json(value: Any) -> str:
    """One JSON document for a record or a list of records.

    Text stays readable UTF-8 (``ensure_ascii=False``); control, bidi and other
    characters that could act on a terminal are ``\\u`` escapes (display.inert_json).
    """
    return inert_json(json.dumps(_plain(value), ensure_ascii=False, indent=2))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
