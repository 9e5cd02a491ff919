"""The questionnaire: its fields, their bounds, and the report JSON built from them.

This module is the single source of truth for what a source can send. The form
template renders these choices, the upload handler validates every part against
FIELDS, and docs/report-format.md documents the resulting JSON document (a test
keeps the three in step). Labels are wrapped in N_() so that Babel extracts them;
they are translated when the page is rendered.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CATEGORIES",
    "COUNTRIES",
    "FIELDS",
    "FOLLOWUP_SCHEMA",
    "PLATFORMS",
    "PROFESSIONS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TARGETS",
    "Field",
    "FormError",
    "build_followup",
    "build_report",
    "clean_filename",
    "decode_text",
]

SCHEMA = "amana.report"
FOLLOWUP_SCHEMA = "amana.followup"
SCHEMA_VERSION = 1


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated at render time."""
    return message


# Top-level categories of ../shared/data/taxonomy.md: (code, short name, the
# plain-language prompt the form shows). The prompts follow the taxonomy's
# bracketed wording; "other" has none there, so it gets one here.
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("spyware", N_("Spyware"),
     N_("I think my phone or computer is being spied on by a government or a spyware company")),
    ("msg", N_("Suspicious message"),
     N_("I received a message, email, call or offer that looks suspicious")),
    ("acct", N_("Account problem"),
     N_("I can't get into my account, or someone else is using my account")),
    ("device", N_("Device acting strangely"), N_("My device is acting strangely")),
    ("seized", N_("Device taken or lost"),
     N_("My phone or laptop was taken from me, or I lost it")),
    ("harass", N_("Harassment"), N_("I'm being attacked, threatened or harassed online")),
    ("impersonation", N_("Impersonation"),
     N_("Someone is pretending to be me or my organisation, or spreading lies about us")),
    ("exposure", N_("Data exposed"),
     N_("My private information, or my sources', has been published or stolen")),
    ("web", N_("Website attacked"), N_("Our website is down, defaced or hacked")),
    ("network", N_("Network watched or blocked"),
     N_("I can't reach a service, or I think my connection is being watched or tampered with")),
    ("legal", N_("Legal pressure"),
     N_("I'm being summoned, charged or pressured because of what I posted or shared")),
    ("advice", N_("Advice"),
     N_("I want help staying safe, or a check of my device with no symptoms")),
    ("other", N_("Something else"), N_("Something else, or I'm not sure")),
)

TARGETS: tuple[tuple[str, str], ...] = (
    ("self", N_("Me")),
    ("other_person", N_("Someone else")),
    ("organisation", N_("An organisation")),
)

# From the taxonomy's "Target profile".
PROFESSIONS: tuple[tuple[str, str], ...] = (
    ("journalist", N_("Journalist")),
    ("media_worker", N_("Other media worker")),
    ("hrd", N_("Human rights defender")),
    ("lawyer", N_("Lawyer")),
    ("activist", N_("Activist")),
    ("ngo_staff", N_("NGO staff")),
    ("researcher", N_("Researcher")),
    ("exiled_dissident", N_("Dissident in exile")),
    ("family_member", N_("Family member of one of these")),
    ("other", N_("Other")),
    ("undisclosed", N_("I prefer not to say")),
)

# From the taxonomy's "Platform".
PLATFORMS: tuple[tuple[str, str], ...] = (
    ("ios", "iPhone / iPad (iOS)"),
    ("android", "Android"),
    ("windows", "Windows"),
    ("macos", "Mac (macOS)"),
    ("linux", "Linux"),
    ("web", N_("An online service or account")),
    ("other", N_("Other")),
    ("unknown", N_("I don't know")),
)

# ISO 3166 codes of the region the coalition covers; names come from CLDR via
# Babel in the page's language, so they need no catalogue entry.
COUNTRIES: tuple[str, ...] = (
    "DZ", "BH", "EG", "IR", "IQ", "IL", "JO", "KW", "LB", "LY", "MR", "MA", "OM", "PS",
    "QA", "SA", "SD", "SY", "TN", "TR", "AE", "EH", "YE",
)
COUNTRY_EXTRA: tuple[tuple[str, str], ...] = (
    ("elsewhere", N_("Somewhere else")),
    ("undisclosed", N_("I prefer not to say")),
)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "text", "choice", "multi", "flag", "csrf"
    max_bytes: int = 0  # for text; 0 means the configured max_field_bytes
    choices: tuple[str, ...] = ()
    required: bool = False


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("csrf", "csrf", max_bytes=128, required=True),
    Field("category", "choice", choices=tuple(c[0] for c in CATEGORIES), required=True),
    Field("secondary", "multi", choices=tuple(c[0] for c in CATEGORIES)),
    Field("country", "choice", choices=COUNTRIES + tuple(c[0] for c in COUNTRY_EXTRA)),
    Field("incident_date", "text", max_bytes=200),
    Field("description", "text"),
    Field("links", "text"),
    Field("senders", "text"),
    Field("messages", "text"),
    Field("target", "choice", choices=tuple(t[0] for t in TARGETS)),
    Field("profession", "choice", choices=tuple(p[0] for p in PROFESSIONS)),
    Field("platforms", "multi", choices=tuple(p[0] for p in PLATFORMS)),
    Field("device_details", "text", max_bytes=1000),
    # Desk ids are checked against the keyring, not a fixed list.
    Field("desks", "multi", required=True),
    Field("consent_share", "flag"),
    Field("consent_publish", "flag"),
)}

FILE_FIELD = "files"


class FormError(Exception):
    """The submission is malformed. status is the HTTP status; reason a message id.

    ``field`` names the form field the problem is about, when there is one (shown next
    to it when the form is answered again); ``limit``, in bytes, the limit the reason
    names as ``%(limit)s``; ``partial``, for a text field over its limit, the beginning
    of it that was read (only ever shown back to the same source, never stored).
    """

    def __init__(self, status: int, reason: str, *, field: str | None = None,
                 limit: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.limit = limit
        self.partial = b""


# Reasons (message ids, shown translated on the error page).
R_MALFORMED = N_("The form could not be read. Please go back and try again.")
R_UNKNOWN_FIELD = N_("The form contained a field this server does not know.")
R_BAD_TEXT = N_("A field contained text that is not valid UTF-8.")
R_BAD_CHOICE = N_("A field contained a value that is not one of the choices.")
R_CATEGORY = N_("Please choose what happened.")
R_DESKS = N_("Please choose at least one desk to receive your report.")
R_CSRF = N_("This form has expired or was not sent from this site. "
            "Please open the form again and resubmit.")


def decode_text(raw: bytes) -> str:
    """Decode a text field strictly: valid UTF-8, no NUL or other control characters."""
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise FormError(400, R_BAD_TEXT) from None
    # Browsers send CRLF line breaks in textareas; store plain LF.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for ch in text:
        if ch not in "\n\t" and unicodedata.category(ch) == "Cc":
            raise FormError(400, R_BAD_TEXT)
    return unicodedata.normalize("NFC", text)


def clean_filename(name: str | None) -> str:
    """The attachment name as the source's browser gave it, reduced to a base name.

    It is only ever stored inside the ciphertext, but the desk's client will
    show it, so path components, control characters and over-long names go.
    """
    if not name:
        return "attachment"
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = unicodedata.normalize("NFC", name).strip().lstrip(".")
    encoded = name.encode("utf-8")[:255]
    name = encoded.decode("utf-8", errors="ignore")
    return name or "attachment"


def _document(schema: str, *, submission_id: str, day: str, lang: str, desks: list[str],
              reply_recipient: str, reply_recipient_pq: str | None,
              attachments: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    """The top level that reports and follow-ups share, around their own ``body``.

    ``reply_recipient_pq`` (age1pq1…) is there with a post-quantum keyring only: the
    key post-quantum desks reply to, while ``reply_recipient`` stays the source's
    address for threading and on the server (docs/adr/0008-post-quantum-desks.md).
    """
    pq = {} if reply_recipient_pq is None else {"reply_recipient_pq": reply_recipient_pq}
    return {
        "schema": schema,
        "version": SCHEMA_VERSION,
        "submission_id": submission_id,
        "received_day": day,
        "language": lang,
        "desks": desks,
        "reply_recipient": reply_recipient,
        **pq,
        **body,
        "attachments": attachments,
    }


def build_report(*, submission_id: str, day: str, lang: str, answers: dict[str, Any],
                 desks: list[str], reply_recipient: str,
                 attachments: list[dict[str, Any]],
                 reply_recipient_pq: str | None = None) -> dict[str, Any]:
    """The JSON document encrypted as the report file (docs/report-format.md)."""
    def text(name: str) -> str:
        return str(answers.get(name, ""))

    return _document(
        SCHEMA, submission_id=submission_id, day=day, lang=lang, desks=desks,
        reply_recipient=reply_recipient, reply_recipient_pq=reply_recipient_pq,
        attachments=attachments, answers={
            "category": answers["category"],
            "secondary_categories": answers.get("secondary", []),
            "country": answers.get("country", ""),
            "incident_date": text("incident_date"),
            "description": text("description"),
            "indicators": {
                "links": text("links"),
                "senders": text("senders"),
                "messages": text("messages"),
            },
            "target": answers.get("target", ""),
            "profession": answers.get("profession", ""),
            "platforms": answers.get("platforms", []),
            "device_details": text("device_details"),
            "consent": {
                "share_within_coalition": bool(answers.get("consent_share", False)),
                "publish_anonymised": bool(answers.get("consent_publish", False)),
            },
        })


def build_followup(*, submission_id: str, day: str, lang: str, message: str, desks: list[str],
                   reply_recipient: str, attachments: list[dict[str, Any]],
                   reply_recipient_pq: str | None = None) -> dict[str, Any]:
    """The follow-up document: a report's top level with ``message`` for ``answers``.

    The desk's client threads it onto the report by ``reply_recipient``
    (docs/report-format.md, "Follow-ups").
    """
    return _document(
        FOLLOWUP_SCHEMA, submission_id=submission_id, day=day, lang=lang, desks=desks,
        reply_recipient=reply_recipient, reply_recipient_pq=reply_recipient_pq,
        attachments=attachments, message=message)
