"""Spyware indicators in the vault: import, list and remove files; match every item.

Scope: the vault side of issue 15. The offline core (journalist_client.iocs) parses
STIX bundles and finds indicators in text and attachments; this module stores what it
gives, runs it over the items of the vault, and reads the results back as records
(journalist_client.records) for ``iocs``, ``list``, ``show`` and ``set``.

* An imported file is stored as a row of ``ioc_files`` (its counts), its indicators as
  columns of text in ``ioc_columns`` (journalist_client.iocs.stored; vault
  migration 3) and the patterns set aside as rows of ``ioc_unsupported``, so the index
  is built from the vault without parsing STIX again. A file is known by its name:
  importing a file of the same name with other content replaces its indicators, the
  same content again changes nothing.
* Every item is matched when it is imported (journalist_client.importer calls
  :func:`match_item`) and again by :func:`rescan` once new indicators arrive: its text
  fields, the SHA-256 the server recorded for each attachment, and each attachment's
  content, decrypted in memory only (journalist_client.iocs.scan_attachment). Matches
  are stored per item with where they were found; the reporter's own MVT detections are
  stored apart (``ioc_claims``) and always shown as the reporter's.
* The severity the matches suggest (journalist_client.iocs.suggest_severity) is stored
  with the item; the triager's decision on it is recorded by journalist_client.triage.

Nothing here opens a network connection or writes attachment bytes anywhere.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import ipaddress
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal

from tqdm import tqdm  # type: ignore[import-untyped]

from journalist_client.iocs import (
    BundleError,
    Claim,
    ExtractError,
    Indicator,
    IndicatorIndex,
    Kind,
    Location,
    Match,
    Problem,
    load_stream,
    scan_attachment,
    stored,
    suggest_severity,
)
from journalist_client.iocs.extract import refang
from journalist_client.iocs.match import dedupe
from journalist_client.iocs.stix import MAX_BUNDLE_BYTES, normalise_value, pause_cyclic_gc
from journalist_client.records import (
    FamilyCount,
    IndicatorFileInfo,
    IndicatorListing,
    IndicatorMatch,
    MvtClaim,
    SeveritySuggestion,
    UnsupportedPattern,
)
from journalist_client.vault import Vault, now, today
from keys import fs
from keys.age import AgeError, decrypt_stream

__all__ = [
    "MARKED",
    "IndicatorError",
    "Kind",
    "ImportOutcome",
    "claims_of",
    "export_sightings",
    "import_file",
    "candidate_value",
    "list_files",
    "mark",
    "match_item",
    "matches_of",
    "problems_of",
    "remove_file",
    "rescan",
    "set_decision",
    "sightings",
    "suggestion_of",
    "unmark",
]

# An attachment larger than this is not decrypted for scanning (its hash still is
# matched): the scan holds it in memory. The server's own limit is lower by default.
MAX_SCAN_BYTES: Final = 256 * 1024 * 1024
_READ_BYTES: Final = 4 * 1024 * 1024
_INDEX: Final = "ioc_index"
_KINDS: Final = {k.value: k for k in Kind}


class IndicatorError(ValueError):
    """An indicator file cannot be imported or removed; the message says why."""


# --- indicator files ----------------------------------------------------------------

@dataclass(frozen=True)
class ImportOutcome:
    """What :func:`import_file` did."""

    info: IndicatorFileInfo
    status: Literal["new", "replaced", "unchanged"]
    previous_sha256: str  # of the file replaced; empty when new


def _check_name(name: str) -> str:
    if not 1 <= len(name) <= 255 or not name.isprintable() or name.startswith("."):
        raise IndicatorError(f"{name[:60]!r}: an indicator file's name must be 1 to 255 "
                             "printable characters, not starting with a dot")
    return name


class _Hashing:
    """A file read through, hashed and counted on a progress bar as it goes.

    The hashing runs on a thread of its own, a chunk behind the reader: hashlib lets go
    of the GIL for large updates, so the SHA-256 of a 500 MB file costs no time beside
    the parsing on a machine with a second core. One worker takes the chunks in order.
    """

    def __init__(self, f: BinaryIO, bar: Any) -> None:
        self._f, self._bar, self._digest = f, bar, hashlib.sha256()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iocs-sha256")
        # The chunk being hashed: waited for before the next is handed over, so that
        # at most one chunk waits in memory (the worker keeps them in order anyway).
        self._pending: Future[None] | None = None

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._f.read(size)
        if self._pending is not None:
            self._pending.result()
        self._pending = self._worker.submit(self._digest.update, chunk)
        self._bar.update(len(chunk))
        return chunk

    def hexdigest(self) -> str:
        """The SHA-256 of everything read (waits for the worker)."""
        self._worker.shutdown(wait=True)
        return self._digest.hexdigest()

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)


def import_file(vault: Vault, path: str | os.PathLike[str], *,
                progress: bool | None = None) -> ImportOutcome:
    """Store the indicators of one STIX 2.1 bundle under its file name.

    A file of that name already in the vault is replaced, with its matches (run
    :func:`rescan` to match again); the same bytes again change nothing. The file is
    read in chunks (journalist_client.iocs.load_stream), never held whole; the progress
    bar shows on a terminal only (``progress=None``).
    """
    name = _check_name(Path(path).name)
    conn = vault.conn
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_BUNDLE_BYTES:
            raise IndicatorError(
                f"{name}: {size:,} bytes, larger than the {MAX_BUNDLE_BYTES >> 20} MiB an "
                "indicator file may be (published files are under 400 MB). Nothing was "
                "imported.")
        old = conn.execute("SELECT sha256 FROM ioc_files WHERE name = ?", (name,)).fetchone()
        sha256 = ""
        if old is not None:
            # First the hash (cheap) when a file of this name is stored: the same content
            # again is not parsed at all.
            digest = hashlib.sha256()
            while chunk := f.read(_READ_BYTES):
                digest.update(chunk)
            sha256 = digest.hexdigest()
            if old[0] == sha256:
                return ImportOutcome(_file_info(conn, name), "unchanged", sha256)
            f.seek(0)
        # disable=None: tqdm draws on stderr only when it is a terminal.
        with (tqdm(total=size, desc=name[:30], unit="B", unit_scale=True, leave=False,
                   disable=progress is False or None) as bar,
              # The million indicators are freed before the collector runs again, so it
              # never walks them (0.3 s for the million).
              pause_cyclic_gc()):
            reader = _Hashing(f, bar)
            try:
                bundle = load_stream(reader, name)
                read_sha256 = reader.hexdigest()
            except BundleError as e:
                raise IndicatorError(f"{name}: {e}. Nothing was imported.") from None
            finally:
                reader.close()
            if sha256 and read_sha256 != sha256:
                raise IndicatorError(f"{name}: the file changed while it was read. Nothing "
                                     "was imported.")
            sha256 = read_sha256
            _delete_file_rows(conn, name)
            conn.execute("INSERT INTO ioc_columns (file, columns, value_lines, id_lines) "
                         "VALUES (?, ?, ?, ?)", (name, *stored.encode(bundle.columns)))
            conn.executemany(
                "INSERT INTO ioc_unsupported (file, indicator_id, pattern, reason, family) "
                "VALUES (?, ?, ?, ?, ?)",
                ((name, u.indicator_id, u.pattern, u.reason, u.family)
                 for u in bundle.unsupported))
            families = {family: [count, 0] for family, count in bundle.families().items()}
            for u in bundle.unsupported:
                families.setdefault(u.family, [0, 0])[1] += 1
            conn.execute("INSERT INTO ioc_files (name, sha256, imported_day, indicators, "
                         "unsupported, families) VALUES (?, ?, ?, ?, ?, ?)",
                         (name, sha256, today(), len(bundle),
                          len(bundle.unsupported), json.dumps(families, ensure_ascii=False)))
            del bundle
    if old is not None:
        _refresh_suggestions(conn)  # the replaced file's matches are gone
    _audit(vault, "iocs import", f"{name} {old[0]}" if old else "", f"{name} {sha256}")
    return ImportOutcome(_file_info(conn, name), "new" if old is None else "replaced",
                         old[0] if old else "")


def remove_file(vault: Vault, name: str) -> IndicatorFileInfo:
    """Remove one indicator file, its indicators and the matches they made."""
    conn = vault.conn
    if conn.execute("SELECT 1 FROM ioc_files WHERE name = ?", (name,)).fetchone() is None:
        raise IndicatorError(f"no indicator file named {name[:80]!r} (see `iocs list`)")
    info = _file_info(conn, name)
    _delete_file_rows(conn, name)
    _refresh_suggestions(conn)
    _audit(vault, "iocs remove", f"{name} {info.sha256}", "")
    return info


def _delete_file_rows(conn: sqlite3.Connection, name: str) -> None:
    for table in ("ioc_files", "ioc_columns", "ioc_unsupported", "ioc_matches"):
        column = "name" if table == "ioc_files" else "file"
        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))  # noqa: S608 - fixed names


def _audit(vault: Vault, what: str, old: str, new: str) -> None:
    # Vault-wide history (item_id ''), as trust-server records its key.
    vault.conn.execute("INSERT INTO history (item_id, at, who, field, old, new) "
                       "VALUES ('', ?, ?, ?, ?, ?)", (now(), vault.user, what, old, new))
    vault.cache.pop(_INDEX, None)
    vault.changed()


def _family_counts(counts: dict[str, list[int]]) -> tuple[FamilyCount, ...]:
    return tuple(FamilyCount(family=f, indicators=c[0], unsupported=c[1])
                 for f, c in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0])))


def _file_info(conn: sqlite3.Connection, name: str) -> IndicatorFileInfo:
    sha256, day, indicators, unsupported, families = conn.execute(
        "SELECT sha256, imported_day, indicators, unsupported, families FROM ioc_files "
        "WHERE name = ?", (name,)).fetchone()
    return IndicatorFileInfo(name=name, sha256=sha256, imported_day=day, indicators=indicators,
                             unsupported=unsupported,
                             families=_family_counts(json.loads(families)))


def list_files(vault: Vault, *, unsupported: bool = False) -> IndicatorListing:
    """Every indicator file with its counts, the families across files and, if asked,
    every pattern the matcher set aside."""
    conn = vault.conn
    names = [n for (n,) in conn.execute("SELECT name FROM ioc_files ORDER BY name")]
    patterns: tuple[UnsupportedPattern, ...] = ()
    if unsupported:
        patterns = tuple(
            UnsupportedPattern(file=f, indicator_id=i, family=fam, pattern=p, reason=r)
            for f, i, fam, p, r in conn.execute(
                "SELECT file, indicator_id, family, pattern, reason FROM ioc_unsupported "
                "ORDER BY file, rowid"))
    files = tuple(_file_info(conn, n) for n in names)
    across: dict[str, list[int]] = {}
    for f in files:
        for c in f.families:
            total = across.setdefault(c.family, [0, 0])
            total[0] += c.indicators
            total[1] += c.unsupported
    return IndicatorListing(files=files, families=_family_counts(across), unsupported=patterns)


# --- the index ------------------------------------------------------------------------

# The columns an Indicator is made from, in _indicator's order (a match stores them).
_INDICATOR_COLUMNS: Final = "file, indicator_id, kind, value, family, stix_key, refs"


def _indicator(row: Sequence[Any], refs_of: dict[str, tuple[str, ...]]) -> Indicator:
    """An Indicator from the first seven columns of a row (:data:`_INDICATOR_COLUMNS`).

    ``refs_of`` caches decoded references: a family's are one JSON text shared by most
    rows ("" or "[]" when none).
    """
    file, indicator_id, kind, value, family, stix_key, refs = row[:7]
    references = refs_of.get(refs)
    if references is None:
        references = refs_of[refs] = tuple(json.loads(refs))
    return Indicator(_KINDS[kind], value, family, file, indicator_id, stix_key, references)


def _no_refs() -> dict[str, tuple[str, ...]]:
    return {"": (), "[]": ()}


def _indicators(conn: sqlite3.Connection) -> Iterator[Indicator]:
    """Every stored indicator, file by file in the order they were imported."""
    for name, *texts in conn.execute(
            "SELECT file, columns, value_lines, id_lines FROM ioc_columns ORDER BY rowid"):
        try:
            yield from stored.decode(name, stored.Stored(*texts))
        except stored.StoredError as e:
            raise IndicatorError(f"the vault's indicators of {name[:80]!r} are damaged ({e}): "
                                 "import the file again") from None


def _index(vault: Vault) -> IndicatorIndex:
    index = vault.cache.get(_INDEX)
    if not isinstance(index, IndicatorIndex):
        index = vault.cache[_INDEX] = IndicatorIndex.build(_indicators(vault.conn))
        # Built once per run and kept (journalist_client.iocs): out of the cyclic GC's
        # reach, full collections no longer walk a million tuples. Reference counting
        # still frees it when the index is dropped.
        gc.freeze()
    return index


# --- matching -------------------------------------------------------------------------

def _text_fields(item_type: str, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every field a source wrote, labelled as ``show`` labels it."""
    if item_type != "report":
        return [("message", doc["message"])]
    a = doc["answers"]
    fields = [("description", a["description"]), ("links", a["indicators"]["links"]),
              ("senders", a["indicators"]["senders"]),
              ("messages", a["indicators"]["messages"]),
              ("device details", a["device_details"]), ("incident date", a["incident_date"])]
    if "referral" in doc:
        fields.append(("referral note", doc["referral"]["note"]))
    return fields


def _decrypt_attachment(vault: Vault, file: str) -> bytes:
    # In memory only: nothing decrypted from an attachment reaches the disk.
    with open(fs.safe_join(vault.dir("files"), file), "rb") as f:
        return b"".join(decrypt_stream(f, [vault.keys.identity], armored=False))


def _scan(vault: Vault, item_id: str, item_type: str, doc: dict[str, Any],
          index: IndicatorIndex) -> tuple[list[Match], list[Claim], list[str]]:
    matches: list[Match] = []
    claims: list[Claim] = []
    problems: list[str] = []
    for label, text in _text_fields(item_type, doc):
        if not text:
            continue
        try:
            matches += index.scan_text(text, Location(label))
        except ExtractError as e:
            problems.append(f"{label}: not scanned ({e})")
    rows = vault.conn.execute("SELECT name, size, sha256, file FROM attachments "
                              "WHERE item_id = ? ORDER BY n", (item_id,)).fetchall()
    for name, size, sha256, file in rows:
        matches += index.match_hash(sha256, Location("attachment sha256", name))
        if size > MAX_SCAN_BYTES:
            problems.append(f"attachment {name}: not scanned (larger than "
                            f"{MAX_SCAN_BYTES >> 20} MiB)")
            continue
        try:
            data = _decrypt_attachment(vault, file)
        except (AgeError, OSError) as e:
            problems.append(f"attachment {name}: cannot be decrypted ({type(e).__name__})")
            continue
        scan = scan_attachment(index, name, data, Location("attachment", name))
        matches += scan.matches
        claims += scan.claims
        problems += [_problem(p) for p in scan.problems]
    return dedupe(matches), claims, problems


def _problem(p: Problem) -> str:
    return f"{p.location}: {p.reason}"


def match_item(vault: Vault, item_id: str) -> int:
    """Match one stored item against every indicator; replace what was stored for it.

    Returns the number of matches. Called by the importer for each new item.
    """
    conn = vault.conn
    index = _index(vault)
    if index.is_empty():
        # No indicator imported yet: nothing can match, and decrypting every attachment
        # to find that out would cost the import a third of its time. `iocs import`
        # tells the triager to rescan.
        _store(conn, item_id, [], [], [])
        vault.changed()
        return 0
    item_type, raw = conn.execute("SELECT type, doc FROM items WHERE id = ?",
                                  (item_id,)).fetchone()
    matches, claims, problems = _scan(vault, item_id, item_type, json.loads(raw), index)
    _store(conn, item_id, matches, claims, problems)
    vault.changed()
    return len(matches)


def _location(where: Location) -> tuple[str, str | None, str]:
    return where.field, where.attachment, json.dumps(where.path, ensure_ascii=False)


def _store(conn: sqlite3.Connection, item_id: str, matches: list[Match],
           claims: list[Claim], problems: list[str], *, suggest: bool = True) -> None:
    """Replace what was stored for one item; then, unless told not to (a rescan
    refreshes every suggestion once at its end), its case's suggested severity."""
    # A triager's marks are theirs, not the scan's: they stay.
    conn.execute("DELETE FROM ioc_matches WHERE item_id = ? AND how != 'marked'", (item_id,))
    conn.execute("DELETE FROM ioc_claims WHERE item_id = ?", (item_id,))
    conn.executemany(
        "INSERT INTO ioc_matches (item_id, file, indicator_id, kind, value, family, stix_key, "
        "refs, candidate, how, field, attachment, path, device_output) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((item_id, m.indicator.source_file, m.indicator.indicator_id, m.indicator.kind.value,
          m.indicator.value, m.indicator.family, m.indicator.stix_key,
          json.dumps(m.indicator.references, ensure_ascii=False), m.candidate, m.how,
          *_location(m.location), int(m.location.device_output)) for m in matches))
    conn.executemany(
        "INSERT INTO ioc_claims (item_id, module, level, message, indicator_value, "
        "indicator_type, family, stix2_file_name, mvt_format, field, attachment, path) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((item_id, c.module, c.level, c.message, c.indicator_value, c.indicator_type,
          c.family, c.stix2_file_name, c.mvt_format, *_location(c.location))
         for c in claims))
    conn.execute("INSERT INTO ioc_scans (item_id, problems, suggestion, confidence, reason, "
                 "decision) VALUES (?, ?, '', '', '', '') ON CONFLICT (item_id) DO UPDATE "
                 "SET problems = excluded.problems",
                 (item_id, json.dumps(problems, ensure_ascii=False)))
    if suggest:
        _suggest_case(conn, item_id)


def _suggest_case(conn: sqlite3.Connection, item_id: str) -> None:
    """The suggestion of an item, and of its report if it is a follow-up."""
    _suggest(conn, item_id)
    # A follow-up's matches count for its report (the case): MVT output often comes later.
    report = conn.execute(
        "SELECT r.id FROM items f JOIN items r ON r.reply_recipient = f.reply_recipient "
        "AND r.type = 'report' WHERE f.id = ? AND f.type = 'followup' ORDER BY r.n LIMIT 1",
        (item_id,)).fetchone()
    if report is not None and conn.execute("SELECT 1 FROM ioc_scans WHERE item_id = ?",
                                           report).fetchone():
        _suggest(conn, report[0])


# The items of the case of item ?1: the item itself and, if it is a report, its
# follow-ups (the same reply address). A fixed text, for `IN (...)`.
_CASE_ITEMS: Final = (
    "SELECT ?1 UNION SELECT f.id FROM items r JOIN items f ON f.reply_recipient = "
    "r.reply_recipient AND f.type = 'followup' WHERE r.id = ?1 AND r.type = 'report'")


def _suggest(conn: sqlite3.Connection, item_id: str) -> None:
    """The suggested severity of one item from the stored matches and claims of its case
    (a report and its follow-ups; a follow-up alone)."""
    # The item itself, and if it is a report, its follow-ups.
    refs_of = _no_refs()
    matches = [_as_match(r, refs_of) for r in conn.execute(
        f"SELECT {_INDICATOR_COLUMNS}, candidate, how, field, attachment, path, "  # noqa: S608
        f"device_output FROM ioc_matches WHERE item_id IN ({_CASE_ITEMS})", (item_id,))]
    claims = [_as_claim(r) for r in conn.execute(
        "SELECT module, level, message, indicator_value, indicator_type, family, "  # noqa: S608
        "stix2_file_name, mvt_format, field, attachment, path FROM ioc_claims WHERE "
        f"item_id IN ({_CASE_ITEMS})", (item_id,))]
    suggestion = suggest_severity(matches, claims)
    level = suggestion.level if suggestion else ""
    # The triager's decision stands while the suggestion it was about stands.
    conn.execute("UPDATE ioc_scans SET decision = CASE WHEN suggestion = ? THEN decision "
                 "ELSE '' END, suggestion = ?, confidence = ?, reason = ? WHERE item_id = ?",
                 (level, level, suggestion.confidence if suggestion else "",
                  suggestion.reason if suggestion else "", item_id))


def _refresh_suggestions(conn: sqlite3.Connection) -> None:
    """After matches were deleted (a file removed or replaced): every suggestion again."""
    for (item_id,) in conn.execute("SELECT item_id FROM ioc_scans").fetchall():
        _suggest(conn, item_id)


def _as_match(row: tuple[Any, ...], refs_of: dict[str, tuple[str, ...]]) -> Match:
    candidate, how, field, attachment, path, device = row[7:]
    return Match(_indicator(row, refs_of), candidate,
                 Location(field, attachment, tuple(json.loads(path)), bool(device)), how)


def _as_claim(row: tuple[Any, ...]) -> Claim:
    (module, level, message, value, kind, family, stix_file, fmt, field, attachment,
     path) = row
    return Claim(Location(field, attachment, tuple(json.loads(path)), True), module, level,
                 message, value, kind, family, stix_file, fmt)


def rescan(vault: Vault, *, progress: bool | None = None) -> tuple[int, int]:
    """Match every item in the vault again (after indicators changed).

    Returns (items scanned, items with at least one match). The progress bar shows on
    a terminal only (``progress=None``); ``False`` hides it.
    """
    conn = vault.conn
    index = _index(vault)
    rows = conn.execute("SELECT id, type, doc FROM items ORDER BY n").fetchall()
    matched = 0
    # disable=None: tqdm draws on stderr only when it is a terminal.
    for item_id, item_type, raw in tqdm(rows, desc="rescanning", unit="item",
                                        disable=progress is False or None, leave=False):
        matches, claims, problems = _scan(vault, item_id, item_type, json.loads(raw), index)
        # Suggestions once at the end: storing them per item would work out a report's
        # again for each of its follow-ups.
        _store(conn, item_id, matches, claims, problems, suggest=False)
        matched += bool(matches)
    _refresh_suggestions(conn)
    vault.changed()
    return len(rows), matched


# --- reading results back -------------------------------------------------------------

def matches_of(conn: sqlite3.Connection, item_id: str) -> tuple[IndicatorMatch, ...]:
    rows = conn.execute(
        "SELECT value, kind, family, file, indicator_id, stix_key, refs, candidate, how, "
        "field, attachment, path, device_output FROM ioc_matches WHERE item_id = ? ORDER BY n",
        (item_id,))
    return tuple(
        IndicatorMatch(value=value, kind=kind, family=family, source_file=file,
                       indicator_id=indicator_id, stix_key=stix_key,
                       references=tuple(json.loads(refs)), candidate=candidate, how=how,
                       field=field, attachment=attachment, path=tuple(json.loads(path)),
                       device_output=bool(device))
        for (value, kind, family, file, indicator_id, stix_key, refs, candidate, how, field,
             attachment, path, device) in rows)


def claims_of(conn: sqlite3.Connection, item_id: str) -> tuple[MvtClaim, ...]:
    rows = conn.execute(
        "SELECT module, level, message, indicator_value, indicator_type, family, "
        "stix2_file_name, mvt_format, field, attachment, path FROM ioc_claims "
        "WHERE item_id = ? ORDER BY n", (item_id,))
    return tuple(
        MvtClaim(module=module, level=level, message=message, indicator_value=value,
                 indicator_type=kind, family=family, stix2_file_name=stix_file,
                 mvt_format=fmt, field=field, attachment=attachment,
                 path=tuple(json.loads(path)))
        for (module, level, message, value, kind, family, stix_file, fmt, field, attachment,
             path) in rows)


def suggestion_of(conn: sqlite3.Connection, item_id: str) -> SeveritySuggestion | None:
    row = conn.execute("SELECT suggestion, confidence, reason, decision FROM ioc_scans "
                       "WHERE item_id = ?", (item_id,)).fetchone()
    if row is None or not row[0]:
        return None
    return SeveritySuggestion(level=row[0], confidence=row[1], reason=row[2], decision=row[3])


def set_decision(conn: sqlite3.Connection, item_id: str, decision: str) -> None:
    conn.execute("UPDATE ioc_scans SET decision = ? WHERE item_id = ?", (decision, item_id))


# --- candidates a triager marks ---------------------------------------------------------

# A triager's candidate is stored as a match row of its own (how 'marked', no source
# file, no published id), so that `show`, the case's suggested severity and `iocs
# export` treat it with the scan's matches; a rescan keeps it (_store).
MARKED: Final = "marked"
UNATTRIBUTED: Final = "unattributed"
_MAX_MARK_CHARS: Final = 2048
_HEX: Final = frozenset("0123456789abcdef")
_NETWORK_KINDS: Final = frozenset({Kind.DOMAIN, Kind.IPV4, Kind.URL, Kind.EMAIL})
_DIGEST_LENGTH: Final = {Kind.MD5: (32,), Kind.SHA1: (40,), Kind.SHA256: (64,),
                         Kind.APP_CERT: (32, 40, 64)}


def candidate_value(kind: Kind, raw: str) -> str:
    """The normalised form of a value a triager types as an indicator of ``kind``,
    as the matcher compares it; IndicatorError saying why it is not one."""
    value = raw.strip()
    if kind in _NETWORK_KINDS:
        value = refang(value).strip()  # what people paste: hxxps://, [.], [at]
    if not value or len(value) > _MAX_MARK_CHARS or not value.isprintable():
        raise IndicatorError(f"a {kind} is 1 to {_MAX_MARK_CHARS} printable characters")
    if kind is Kind.IPV4:
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise IndicatorError(f"{value[:80]!r} is not an IPv4 address") from None
    if kind in _DIGEST_LENGTH:
        lowered = value.lower()
        if len(lowered) not in _DIGEST_LENGTH[kind] or not set(lowered) <= _HEX:
            lengths = " or ".join(str(n) for n in _DIGEST_LENGTH[kind])
            raise IndicatorError(f"a {kind} is {lengths} hexadecimal digits")
        return lowered
    if kind is Kind.DOMAIN and ("/" in value or "." not in value.strip(".")):
        raise IndicatorError(f"{value[:80]!r} is not a domain name (for a link use --type url)")
    if kind is Kind.FILE_PATH and not value.startswith("/"):
        raise IndicatorError("a file_path is absolute (starts with /)")
    normalised = normalise_value(kind, value)
    if normalised is None or (kind is Kind.EMAIL and "@" not in normalised):
        raise IndicatorError(f"{value[:80]!r} is not a usable {kind}")
    return normalised


def _mark_key(vault: Vault, item_id: str) -> str:
    # A full id (the CLI resolves a prefix with journalist_client.triage.get_item).
    if vault.conn.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
        raise IndicatorError(f"no report or follow-up with id {item_id[:40]}")
    return item_id


def mark(vault: Vault, item_id: str, kind: Kind, value: str, *,
         family: str = "") -> IndicatorMatch:
    """Record a new candidate indicator the triager found in an item (and its history).

    ``iocs export`` shares it as a STIX indicator with its sightings: kind, value,
    family and days, nothing else. Marking the same value again changes nothing.
    """
    item = _mark_key(vault, item_id)
    normalised = candidate_value(kind, value)
    family = family.strip() or UNATTRIBUTED
    if len(family) > 128 or not family.isprintable():
        raise IndicatorError("--family is 1 to 128 printable characters")
    conn = vault.conn
    if conn.execute("SELECT 1 FROM ioc_matches WHERE item_id = ? AND how = ? AND kind = ? "
                    "AND value = ?", (item, MARKED, kind.value, normalised)).fetchone():
        raise IndicatorError(f"{kind} {normalised[:80]} is already marked on this item")
    conn.execute(
        "INSERT INTO ioc_matches (item_id, file, indicator_id, kind, value, family, stix_key, "
        "refs, candidate, how, field, attachment, path, device_output) "
        "VALUES (?, '', '', ?, ?, ?, '', '[]', ?, ?, ?, NULL, '[]', 0)",
        (item, kind.value, normalised, family, value.strip(), MARKED, "marked by the desk"))
    _marked_history(vault, item, "", f"{kind} {normalised} ({family})")
    return _marked(conn, item, kind, normalised)


def unmark(vault: Vault, item_id: str, kind: Kind, value: str) -> IndicatorMatch:
    """Withdraw a candidate indicator marked on an item (recorded in its history)."""
    item = _mark_key(vault, item_id)
    normalised = candidate_value(kind, value)
    found = _marked(vault.conn, item, kind, normalised)
    vault.conn.execute("DELETE FROM ioc_matches WHERE item_id = ? AND how = ? AND kind = ? "
                       "AND value = ?", (item, MARKED, kind.value, normalised))
    _marked_history(vault, item, f"{kind} {normalised} ({found.family})", "")
    return found


def _marked(conn: sqlite3.Connection, item: str, kind: Kind, value: str) -> IndicatorMatch:
    for m in matches_of(conn, item):
        if m.how == MARKED and m.kind == kind.value and m.value == value:
            return m
    raise IndicatorError(f"{kind} {value[:80]} is not marked on this item (see `show`)")


def _marked_history(vault: Vault, item: str, old: str, new: str) -> None:
    conn = vault.conn
    conn.execute("INSERT INTO history (item_id, at, who, field, old, new) "
                 "VALUES (?, ?, ?, 'candidate indicator', ?, ?)",
                 (item, now(), vault.user, old, new))
    if conn.execute("SELECT 1 FROM ioc_scans WHERE item_id = ?", (item,)).fetchone() is None:
        conn.execute("INSERT INTO ioc_scans (item_id, problems, suggestion, confidence, "
                     "reason, decision) VALUES (?, '[]', '', '', '', '')", (item,))
    _suggest_case(conn, item)
    vault.changed()


def sightings(vault: Vault, *, since: dt.date, until: dt.date
              ) -> list[tuple[Indicator, int, dt.date, dt.date]]:
    """The published indicators seen in items received from ``since`` to ``until``
    (inclusive): ``(indicator, items it was found in, first day, last day)``.

    For ``iocs export``: the four fields of journalist_client.iocs.share.Seen, in its
    order. Only the indicator and days leave here: no item id, no text, no file name
    of the reporter's, no date finer than the day the server recorded.
    """
    rows = vault.conn.execute(
        "SELECT m.file, m.indicator_id, m.kind, m.value, m.family, m.stix_key, m.refs, "
        "count(DISTINCT m.item_id), min(i.received_day), max(i.received_day) "
        "FROM ioc_matches m JOIN items i ON i.id = m.item_id "
        "WHERE i.received_day BETWEEN ? AND ? "
        "GROUP BY m.file, m.indicator_id, m.kind, m.value, m.family "
        "ORDER BY m.file, m.indicator_id", (since.isoformat(), until.isoformat()))
    refs_of = _no_refs()
    return [(_indicator(row, refs_of), row[7], dt.date.fromisoformat(row[8]),
             dt.date.fromisoformat(row[9])) for row in rows]


def export_sightings(vault: Vault, out: str | os.PathLike[str], *, since: dt.date,
                     until: dt.date, fmt: Literal["stix2", "misp"]) -> int:
    """Write the indicators seen in reports received from ``since`` to ``until`` as a
    STIX 2.1 bundle of sightings or a MISP event, for other helplines; how many.

    What leaves is what :func:`sightings` returns: published indicators, counts and
    days. The file is new (never replaces one) and 0600.
    """
    if until < since:
        raise IndicatorError("--until is before --since")
    # Imported here, not at the top: stix2 loads an HTTP library (requests) that nothing
    # calls, and only this command needs it.
    from journalist_client.iocs.share import Seen, build_misp, build_stix2

    seen = [Seen(*row) for row in sightings(vault, since=since, until=until)]
    build = build_stix2 if fmt == "stix2" else build_misp
    document = build(seen, since=since, until=until)
    try:
        fs.atomic_write_bytes(out, json.dumps(document, ensure_ascii=False,
                                              indent=1).encode("utf-8"))
    except (fs.FsError, OSError) as e:
        raise IndicatorError(f"cannot write {out}: {e}") from None
    return len(seen)


def problems_of(conn: sqlite3.Connection, item_id: str) -> tuple[str, ...]:
    row = conn.execute("SELECT problems FROM ioc_scans WHERE item_id = ?",
                       (item_id,)).fetchone()
    return () if row is None else tuple(json.loads(row[0]))
