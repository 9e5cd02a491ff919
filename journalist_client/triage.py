"""Triage: listing, showing and annotating cases, with a history of every change.

A *case* is a report; the source's follow-ups join it through the reply recipient they
share (docs/transfer-format.md). Each change made with :func:`set_fields`, :func:`add_note`
or the tag functions is recorded in the ``history`` table with who and when (to the
minute), inside the encrypted vault. What the CLI shows comes from :func:`list_items`,
:func:`show_item`, :func:`history` and :func:`run_search` as typed records
(journalist_client.records). Text written by sources is returned raw; the CLI passes it
through journalist_client.display before printing.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from journalist_client import indicators, search, vault_journal
from journalist_client.records import (
    Answers,
    Attachment,
    Consent,
    FollowUp,
    HistoryEntry,
    Indicators,
    ItemSummary,
    Note,
    Referral,
    Report,
    SearchHit,
    ThreadEntry,
)
from journalist_client.taxonomy import CATEGORY_CODES, SEVERITIES, STATUSES
from journalist_client.vault import SEARCH_RULES_KEY, Vault, now
from keys import ids

__all__ = [
    "CONSENT_OVERRIDE",
    "Filters",
    "TriageError",
    "add_note",
    "case_of",
    "count_items",
    "count_search",
    "get_item",
    "history",
    "item_fields",
    "list_items",
    "record_consent_override",
    "refresh_search_index",
    "reindex_item",
    "run_search",
    "run_search_marked",
    "set_fields",
    "show_item",
]

# What a triager calls a field (the column names are the store's).
_FIELD_LABELS: Final = {"triage_category": "category"}

MAX_NOTE_CHARS: Final = 64 * 1024
_TAG_RE: Final = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,64}")
_NAME_RE: Final = re.compile(r"[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]{1,64}")


class TriageError(ValueError):
    """The item does not exist, or a value is not allowed; the message says which."""


def get_item(vault: Vault, item_id: str) -> dict[str, Any]:
    """The item whose id is ``item_id`` or starts with it (at least 6 characters)."""
    if not re.fullmatch(r"[0-9a-f]{6,32}", item_id):
        raise TriageError("an id is 6 to 32 lower-case hex characters (the start is enough)")
    rows = vault.conn.execute(
        "SELECT * FROM items WHERE id LIKE ? LIMIT 2", (item_id + "%",)
    ).fetchall()
    if not rows:
        raise TriageError(f"no report or follow-up with id {item_id}")
    if len(rows) > 1:
        raise TriageError(f"id {item_id} is ambiguous: type more of it")
    return _row(vault.conn, rows[0])


def _row(conn: sqlite3.Connection, row: Sequence[Any]) -> dict[str, Any]:
    cols = [d[1] for d in conn.execute("PRAGMA table_info(items)")]
    return dict(zip(cols, row, strict=True))


def item_fields(item: dict[str, Any], conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every searchable text of an item, labelled: the answers, names, notes, tags."""
    doc = json.loads(item["doc"])
    fields: list[tuple[str, str]] = []
    if item["type"] == "report":
        a = doc["answers"]
        fields += [
            ("description", a["description"]),
            ("links", a["indicators"]["links"]),
            ("senders", a["indicators"]["senders"]),
            ("messages", a["indicators"]["messages"]),
            ("incident date", a["incident_date"]),
            ("device", a["device_details"]),
            ("category", " ".join([a["category"], *a["secondary_categories"]])),
            ("country", a["country"]),
            ("platforms", " ".join(a["platforms"])),
            ("profession", a["profession"]),
        ]
        if "referral" in doc:
            fields.append(("referral note", doc["referral"]["note"]))
    else:
        fields.append(("message", doc["message"]))
    fields += [("attachment", att["name"]) for att in doc["attachments"]]
    for (text,) in conn.execute("SELECT text FROM notes WHERE item_id = ? ORDER BY n",
                                (item["id"],)):
        fields.append(("note", text))
    tags = [t for (t,) in conn.execute("SELECT tag FROM tags WHERE item_id = ?", (item["id"],))]
    if tags:
        fields.append(("tags", " ".join(tags)))
    if item["triage_category"]:
        fields.append(("triage category", item["triage_category"].replace(".", " ")))
    return [(label, text) for label, text in fields if text]


def reindex_item(conn: sqlite3.Connection, item: dict[str, Any]) -> None:
    body = search.index_text(text for _, text in item_fields(item, conn))
    vault_journal.index_search(conn, item["n"], body)


def refresh_search_index(vault: Vault) -> bool:
    """Rebuild the search index if a client with other index rules built it (the rules
    are journalist_client.search's); whether it did. Run right after unlocking."""
    if vault.meta(SEARCH_RULES_KEY) == search.INDEX_RULES:
        return False
    for row in vault.conn.execute("SELECT * FROM items").fetchall():
        reindex_item(vault.conn, _row(vault.conn, row))
    vault.set_meta(SEARCH_RULES_KEY, search.INDEX_RULES)
    return True


def case_of(vault: Vault, item: dict[str, Any]) -> dict[str, Any] | None:
    """The report a follow-up belongs to (same reply recipient), or None if not here."""
    if item["type"] == "report":
        return item
    row = vault.conn.execute(
        "SELECT * FROM items WHERE type = 'report' AND reply_recipient = ? ORDER BY n LIMIT 1",
        (item["reply_recipient"],),
    ).fetchone()
    return None if row is None else _row(vault.conn, row)


def _record(vault: Vault, item_id: str, field: str, old: str | None, new: str | None) -> None:
    vault.conn.execute(
        "INSERT INTO history (item_id, at, who, field, old, new) VALUES (?, ?, ?, ?, ?, ?)",
        (item_id, now(), vault.user, field, old or "", new or ""),
    )
    vault.changed()


#: The history field of a referral made against the source's declined consent.
CONSENT_OVERRIDE: Final = "consent_override"


def record_consent_override(vault: Vault, item_id: str, to_desk: str, reason: str) -> None:
    """Record that ``item_id`` was referred to ``to_desk`` although its source declined
    sharing, and why (journalist_client.replies.refer); ``show`` always shows it."""
    _record(vault, item_id, CONSENT_OVERRIDE, None, f"{to_desk}: {reason}")


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.fullmatch(value) or value != value.strip():
        raise TriageError(f"{what} must be 1 to 64 printable characters")
    return value


def set_fields(
    vault: Vault,
    item_id: str,
    *,
    status: str | None = None,
    severity: str | None = None,
    category: str | None = None,
    assign: str | None = None,
    tags: Sequence[str] = (),
    untags: Sequence[str] = (),
    confirm_suggestion: bool = False,
) -> list[str]:
    """Change triage fields of a report; return a line per change made.

    When the report's indicator matches suggest a severity, setting the severity is
    the triager's decision on that suggestion, recorded in the history as confirmed or
    overridden; ``confirm_suggestion`` sets the suggested severity (or insists that
    the one given is it).
    """
    item = get_item(vault, item_id)
    if item["type"] != "report":
        raise TriageError("triage fields belong to the report; set them on the report's id")
    if status is not None and status not in STATUSES:
        raise TriageError(f"status must be one of {', '.join(STATUSES)}")
    if severity is not None:
        severity = severity.upper()
        if severity not in SEVERITIES:
            raise TriageError("severity must be S1 (critical) … S5 (informational)")
    suggestion = indicators.suggestion_of(vault.conn, item["id"])
    if confirm_suggestion:
        if suggestion is None:
            raise TriageError("this report has no suggested severity to confirm")
        if severity is not None and severity != suggestion.level:
            raise TriageError(f"--confirm-suggestion: the suggestion is {suggestion.level}, "
                              f"not {severity}; drop one of the two options")
        severity = suggestion.level
    if category is not None and category not in CATEGORY_CODES:
        raise TriageError(f"unknown category {category[:40]!r}: use a code from the taxonomy, "
                          "like spyware or spyware.exploit_link")
    if assign is not None and assign != "":
        _check_name(assign, "assignee")
    changes: list[str] = []
    for column, value in (("status", status), ("severity", severity),
                          ("triage_category", category), ("assignee", assign)):
        if value is None or value == item[column]:
            continue
        vault.conn.execute(f"UPDATE items SET {column} = ? WHERE n = ?",  # noqa: S608 - fixed names
                           (value, item["n"]))
        _record(vault, item["id"], column, item[column], value)
        changes.append(f"{_FIELD_LABELS.get(column, column)}: {item[column] or '-'} → "
                       f"{value or '-'}")
        item[column] = value
    if suggestion is not None and severity is not None:
        decision = "confirmed" if severity == suggestion.level else "overridden"
        if decision != suggestion.decision or confirm_suggestion:
            indicators.set_decision(vault.conn, item["id"], decision)
            said = ("confirmed" if decision == "confirmed"
                    else f"overrode the suggestion {suggestion.level} with {severity}")
            _record(vault, item["id"], "severity suggestion", suggestion.level, said)
            changes.append(f"severity suggestion {suggestion.level}: {said}")
    for tag in tags:
        if not _TAG_RE.fullmatch(tag):
            raise TriageError("a tag is 1 to 64 printable characters without spaces")
        cur = vault.conn.execute("INSERT OR IGNORE INTO tags (item_id, tag) VALUES (?, ?)",
                                 (item["id"], tag))
        if cur.rowcount:
            _record(vault, item["id"], "tag", None, tag)
            changes.append(f"tag added: {tag}")
    for tag in untags:
        cur = vault.conn.execute("DELETE FROM tags WHERE item_id = ? AND tag = ?",
                                 (item["id"], tag))
        if cur.rowcount:
            _record(vault, item["id"], "tag", tag, None)
            changes.append(f"tag removed: {tag}")
    if changes:
        reindex_item(vault.conn, item)
    return changes


def add_note(vault: Vault, item_id: str, text: str) -> None:
    item = get_item(vault, item_id)
    if not text.strip():
        raise TriageError("the note is empty")
    if len(text) > MAX_NOTE_CHARS:
        raise TriageError(f"a note is at most {MAX_NOTE_CHARS} characters")
    vault.conn.execute("INSERT INTO notes (item_id, at, author, text) VALUES (?, ?, ?, ?)",
                       (item["id"], now(), vault.user, text))
    _record(vault, item["id"], "note", None, text[:80])
    reindex_item(vault.conn, item)


def history(vault: Vault, item_id: str) -> list[HistoryEntry]:
    """Who changed what on an item, and when (to the minute), oldest first."""
    return _history(vault.conn, get_item(vault, item_id)["id"])


def _history(conn: sqlite3.Connection, item_id: str) -> list[HistoryEntry]:
    rows = conn.execute("SELECT at, who, field, old, new FROM history WHERE item_id = ? "
                        "ORDER BY n", (item_id,))
    return [HistoryEntry(at=at, who=who, field=field, old=old, new=new)
            for at, who, field, old, new in rows]


def _attachments(conn: sqlite3.Connection, item_id: str) -> tuple[Attachment, ...]:
    rows = conn.execute("SELECT n, name, media_type, size, sha256 FROM attachments "
                        "WHERE item_id = ? ORDER BY n", (item_id,))
    return tuple(Attachment(n=n, name=name, media_type=media, size=size, sha256=sha)
                 for n, name, media, size, sha in rows)


def _answers(a: dict[str, Any]) -> Answers:
    # The document passed journalist_client.schema on import: every field is there.
    ind, consent = a["indicators"], a["consent"]
    return Answers(
        category=a["category"], secondary_categories=tuple(a["secondary_categories"]),
        country=a["country"], incident_date=a["incident_date"], description=a["description"],
        indicators=Indicators(links=ind["links"], senders=ind["senders"],
                              messages=ind["messages"]),
        target=a["target"], profession=a["profession"], platforms=tuple(a["platforms"]),
        device_details=a["device_details"],
        consent=Consent(share_within_coalition=consent["share_within_coalition"],
                        publish_anonymised=consent["publish_anonymised"]),
    )


def _thread(conn: sqlite3.Connection, item: dict[str, Any]) -> tuple[ThreadEntry, ...]:
    """The source's follow-ups and the desk's replies, in time order."""
    followups = conn.execute(
        "SELECT id, received_day, doc FROM items WHERE type = 'followup' AND "
        "reply_recipient = ? ORDER BY n", (item["reply_recipient"],)).fetchall()
    replies = conn.execute("SELECT id, at, author, body FROM replies WHERE item_id = ?",
                           (item["id"],)).fetchall()
    thread = [ThreadEntry(at=day, kind="followup", id=fid, author="",
                          body=json.loads(doc)["message"],
                          attachments=_attachments(conn, fid),
                          matches=len(indicators.matches_of(conn, fid)))
              for fid, day, doc in followups]
    thread += [ThreadEntry(at=at, kind="reply", id=rid, author=author, body=body,
                           attachments=(), matches=0)
               for rid, at, author, body in replies]
    # A follow-up carries only its day, a reply its minute: a stable sort keeps a
    # follow-up before the replies of the same day, as they were listed.
    return tuple(sorted(thread, key=lambda t: t.at))


def show_item(vault: Vault, item_id: str) -> Report | FollowUp:
    """Everything about one item (``show``): a report with its thread, notes and
    history, or a follow-up with the report it belongs to."""
    item = get_item(vault, item_id)
    conn = vault.conn
    doc = json.loads(item["doc"])
    if item["type"] == "followup":
        case = case_of(vault, item)
        return FollowUp(id=item["id"], type="followup", received_day=item["received_day"],
                        report_id=case["id"] if case else None, message=doc["message"],
                        attachments=_attachments(conn, item["id"]),
                        matches=indicators.matches_of(conn, item["id"]),
                        claims=indicators.claims_of(conn, item["id"]),
                        scan_problems=indicators.problems_of(conn, item["id"]))
    ref = doc.get("referral")
    tags = tuple(t for (t,) in conn.execute("SELECT tag FROM tags WHERE item_id = ?",
                                            (item["id"],)))
    notes = tuple(Note(at=at, author=author, text=text) for at, author, text in conn.execute(
        "SELECT at, author, text FROM notes WHERE item_id = ? ORDER BY n", (item["id"],)))
    history = tuple(_history(conn, item["id"]))
    return Report(
        id=item["id"], type="report", received_day=item["received_day"],
        language=item["language"], desks=tuple(json.loads(item["desks"])),
        status=item["status"], severity=item["severity"],
        triage_category=item["triage_category"], assignee=item["assignee"], tags=tags,
        answers=_answers(doc["answers"]),
        referral=Referral(from_desk=ref["from_desk"], day=ref["day"], note=ref["note"])
        if ref else None,
        attachments=_attachments(conn, item["id"]), thread=_thread(conn, item), notes=notes,
        history=history,
        consent_overrides=tuple(h for h in history if h.field == CONSENT_OVERRIDE),
        matches=indicators.matches_of(conn, item["id"]),
        claims=indicators.claims_of(conn, item["id"]),
        suggestion=indicators.suggestion_of(conn, item["id"]),
        scan_problems=indicators.problems_of(conn, item["id"]),
    )


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    severity: str | None = None
    category: str | None = None
    country: str | None = None
    desk: str | None = None
    since: str | None = None
    until: str | None = None
    tag: str | None = None
    indicator: str | None = None
    matched: bool = False  # only items where a published indicator was found
    include_followups: bool = False


def _summary(item: dict[str, Any]) -> ItemSummary:
    return ItemSummary(id=item["id"], type=item["type"], received_day=item["received_day"],
                       status=item["status"], severity=item["severity"],
                       category=item["triage_category"] or item["category"],
                       country=item["country"], matches=item["matches"])


def _filter_sql(f: Filters) -> tuple[str, list[Any], str]:
    """The WHERE clause (or ""), its arguments, and the expression counting a row's
    indicator matches, for the filters ``f``."""
    where: list[str] = [] if f.include_followups else ["type = 'report'"]
    args: list[Any] = []
    if f.status is not None:
        if f.status not in STATUSES:
            raise TriageError(f"status must be one of {', '.join(STATUSES)}")
        where.append("status = ?")
        args.append(f.status)
    if f.severity is not None:
        where.append("severity = ?")
        args.append(f.severity.upper())
    if f.category is not None:
        # The triager's category, or the reporter's own choice when none is set yet.
        where.append("(triage_category = ? OR triage_category LIKE ? OR "
                     "(triage_category = '' AND category = ?))")
        args += [f.category, f.category + ".%", f.category]
    if f.country is not None:
        where.append("country = ?")
        args.append(f.country)
    if f.desk is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(items.desks) WHERE value = ?)")
        args.append(f.desk)
    for day, op in ((f.since, ">="), (f.until, "<=")):
        if day is not None:
            if not ids.DAY_RE.fullmatch(day):
                raise TriageError("dates are YYYY-MM-DD")
            where.append(f"received_day {op} ?")
            args.append(day)
    if f.tag is not None:
        where.append("EXISTS (SELECT 1 FROM tags WHERE tags.item_id = items.id AND tag = ?)")
        args.append(f.tag)
    if f.indicator is not None:
        # Literal, case-insensitive containment in the indicator answers; the published
        # indicators found in a report are `matched` (journalist_client.indicators).
        where.append("(instr(lower(json_extract(doc, '$.answers.indicators.links')), ?) OR "
                     "instr(lower(json_extract(doc, '$.answers.indicators.senders')), ?) OR "
                     "instr(lower(json_extract(doc, '$.answers.indicators.messages')), ?))")
        args += [f.indicator.lower()] * 3
    # A report's matches are those of its case: the MVT output often comes later, in a
    # follow-up (same reply recipient). A follow-up counts its own.
    count = ("(SELECT count(*) FROM ioc_matches WHERE ioc_matches.item_id = items.id OR "
             "(items.type = 'report' AND ioc_matches.item_id IN (SELECT f.id FROM items f "
             "WHERE f.type = 'followup' AND f.reply_recipient = items.reply_recipient)))")
    if f.matched:
        where.append(f"{count} > 0")
    return (" WHERE " + " AND ".join(where) if where else ""), args, count


def list_items(vault: Vault, f: Filters, limit: int = 100) -> list[ItemSummary]:
    """Items matching every given filter, newest first, at most ``limit``."""
    where, args, count = _filter_sql(f)
    sql = f"SELECT *, {count} AS matches FROM items{where} ORDER BY n DESC LIMIT ?"  # noqa: S608 - fixed text
    cur = vault.conn.execute(sql, (*args, limit))
    cols = [d[0] for d in cur.description]
    return [_summary(dict(zip(cols, r, strict=True))) for r in cur.fetchall()]


def count_items(vault: Vault, f: Filters) -> int:
    """How many items match the filters, all of them (``list`` shows at most its limit)."""
    where, args, _ = _filter_sql(f)
    return int(vault.conn.execute(f"SELECT count(*) FROM items{where}",  # noqa: S608
                                  args).fetchone()[0])




def count_search(vault: Vault, text: str) -> int:
    """How many items match ``text``, all of them (``search`` shows at most its limit)."""
    return search.count_rowids(vault.conn, search.parse_query(text))


def run_search(vault: Vault, text: str, limit: int = 20) -> list[SearchHit]:
    """Items matching ``text`` (see journalist_client.search), newest first, with a snippet."""
    return [hit for hit, _ in run_search_marked(vault, text, limit)]


def run_search_marked(vault: Vault, text: str, limit: int = 20
                      ) -> list[tuple[SearchHit, tuple[tuple[str, bool], ...]]]:
    """:func:`run_search`, each hit with its snippet as ``(text, is_match)`` pieces
    (search.snippet_parts), for the local UI to highlight without parsing brackets."""
    query = search.parse_query(text)
    out = []
    for n in search.search_rowids(vault.conn, query, limit):
        row = vault.conn.execute("SELECT * FROM items WHERE n = ?", (n,)).fetchone()
        if row is None:
            continue
        item = _row(vault.conn, row)
        parts = search.snippet_parts(item_fields(item, vault.conn), query)
        out.append((SearchHit(id=item["id"], type=item["type"],
                              received_day=item["received_day"], status=item["status"],
                              snippet=search.snippet_text(parts)),
                    parts))
    return out
