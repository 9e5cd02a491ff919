"""Scan attachment bytes, in memory, for indicators: text, e-mail, JSON, zips, MVT output.

Scope: ``(name, bytes)`` in, an :class:`AttachmentScan` out. Nothing is written to
disk or executed; zip entry names and MIME file names are labels in a
:class:`~journalist_client.iocs.match.Location`, never paths. Every read is bounded
by :class:`Limits`; a limit that is hit, or a part that cannot be decoded, becomes a
:class:`Problem` in the result, and scanning goes on with the rest. Only
:func:`read_zip` raises, and only :class:`ZipLimitError` or :class:`ZipFormatError`.

How the kind is decided: a zip by its magic bytes; an e-mail by ``.eml`` or by
starting with RFC 5322 headers; JSON by ``.json`` or a leading ``{``/``[`` that parses;
anything else is text (UTF-8, UTF-16 with a BOM, else Latin-1 so no byte is lost).

MVT output (``shared/data/mvt_formats.md``), as a zipped results folder or single files,
v3 (2026.x) and v2 (≤ 2.7):

* ``<slug>.json`` module records are **re-matched** against our indicators, the way
  ``mvt check-iocs`` does: every string value is checked against the exact sets
  (paths, process, app ids, certificates, profiles, properties, hashes, emails) and
  searched for URLs and domains. These are :attr:`AttachmentScan.matches` with
  ``device_output=True`` in their location.
* ``*_detected.json`` and ``alerts.json`` are the **reporter's claims**: what their own
  MVT run (with their own, maybe older, indicators) said. They are returned apart, as
  :attr:`AttachmentScan.claims`, never mixed with our matches. If a module's
  ``<slug>.json`` is missing, the records inside its claims are re-matched too.
* ``info.json`` gives the MVT version; ``timeline*.csv``, ``alerts_timeline.csv`` and
  ``command.log`` repeat the records and claims, and are not scanned (listed in
  :attr:`AttachmentScan.skipped`).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from operator import itemgetter
from typing import Any

from journalist_client.iocs import _json as strict_json
from journalist_client.iocs.extract import MAX_TEXT_CHARS
from journalist_client.iocs.match import IndicatorIndex, Location, Match, dedupe

__all__ = [
    "AttachmentScan",
    "Claim",
    "Limits",
    "Problem",
    "ZipEntry",
    "ZipFormatError",
    "ZipLimitError",
    "read_zip",
    "scan_attachment",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one attachment may make us read."""

    max_entries: int = 2000            # zip entries, per archive
    max_total_bytes: int = 256 << 20   # uncompressed, across the whole attachment
    max_entry_bytes: int = 64 << 20    # uncompressed, one zip entry or MIME part
    max_ratio: int = 200               # uncompressed / compressed, per zip entry
    max_depth: int = 3                 # a zip in a zip in a zip; an e-mail counts as one
    max_mime_parts: int = 500
    max_json_nodes: int = 2_000_000


class ZipFormatError(ValueError):
    """Not a zip we can read (corrupt, encrypted, unknown compression)."""


class ZipLimitError(ValueError):
    """The zip exceeds a :class:`Limits` bound; the message names it."""


@dataclass(frozen=True, slots=True)
class ZipEntry:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Problem:
    """Something not scanned, and why (a limit, a format error)."""

    location: Location
    reason: str


@dataclass(frozen=True, slots=True)
class Claim:
    """One detection the reporter's own MVT run recorded (not ours)."""

    location: Location
    module: str
    level: str                 # v3 alert level; "" in v2 output, which has none
    message: str
    indicator_value: str
    indicator_type: str        # MVT bucket name ("domains", "processes", ...)
    family: str
    stix2_file_name: str
    mvt_format: str            # "v3" or "v2"


@dataclass
class AttachmentScan:
    matches: list[Match] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mvt_version: str | None = None


class _Budget:
    """Uncompressed bytes still allowed for this attachment."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, size: int) -> None:
        if size > self.left:
            raise ZipLimitError("the attachment expands past the total size limit")
        self.left -= size


def read_zip(data: bytes, limits: Limits = Limits(),
             budget: _Budget | None = None) -> list[ZipEntry]:
    """The files of a zip held in memory, each read within the limits.

    Raises :class:`ZipLimitError` or :class:`ZipFormatError`, nothing else.
    """
    budget = budget or _Budget(limits.max_total_bytes)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError,
            NotImplementedError, UnicodeDecodeError, IndexError, KeyError) as exc:
        raise ZipFormatError(f"not a readable zip ({type(exc).__name__})") from None
    if len(infos) > limits.max_entries:
        raise ZipLimitError(f"{len(infos)} entries; the limit is {limits.max_entries}")
    entries: list[ZipEntry] = []
    with archive:
        for info in infos:
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise ZipFormatError(f"entry {info.filename!r} is encrypted")
            if info.file_size > limits.max_entry_bytes:
                raise ZipLimitError(f"entry {info.filename!r} declares {info.file_size} bytes")
            if info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise ZipLimitError(
                    f"entry {info.filename!r} compression ratio over {limits.max_ratio}")
            budget.take(info.file_size)
            try:
                with archive.open(info, "r") as stream:  # read mode, said for the fs audit
                    # Never trust the declared size: read one byte past it at most.
                    content = stream.read(info.file_size + 1)
            except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError,
                    NotImplementedError, RuntimeError, UnicodeDecodeError) as exc:
                raise ZipFormatError(f"entry {info.filename!r}: {type(exc).__name__}") from None
            if len(content) != info.file_size:
                raise ZipFormatError(f"entry {info.filename!r} is not the size it declares")
            entries.append(ZipEntry(info.filename, content))
    return entries


# --- JSON ----------------------------------------------------------------------

# (hex length, hashlib name): the three digests an indicator file may give.
_DIGESTS = ((64, "sha256"), (40, "sha1"), (32, "md5"))


class _JsonError(ValueError):
    pass


def _load_json(data: bytes) -> Any:
    # The indicator code's one strict decoder (journalist_client.iocs._json says why
    # not keys.strict_json); a leading BOM is allowed, as tools on Windows write one.
    try:
        return strict_json.loads(data, encoding="utf-8-sig")
    except strict_json.StrictJsonError as exc:
        raise _JsonError(str(exc)) from None


def _strings(value: Any, limit: int) -> list[tuple[str, str]]:
    """(JSON pointer, string) for every string in ``value``, keys' values only, bounded.

    In document order; the whole document's root is "/". A list, not a generator: an
    MVT folder holds tens of thousands of strings, and a generator step each cost
    more than the walk itself.
    """
    found: list[tuple[str, str]] = []
    keep = found.append
    stack: list[tuple[str, Any]] = [("", value)]
    pop, push = stack.pop, stack.extend
    nodes = 0
    while stack:
        pointer, node = pop()
        nodes += 1
        if nodes > limit:
            raise _JsonError(f"more than {limit} JSON values")
        if isinstance(node, str):
            keep((pointer or "/", node))
        elif isinstance(node, dict):
            push(reversed([(f"{pointer}/{k}", v) for k, v in node.items()]))
        elif isinstance(node, list):
            push(reversed([(f"{pointer}/{i}", v) for i, v in enumerate(node)]))
    return found


# --- the scanner ---------------------------------------------------------------

# Strings searched together in one extraction (see _Scanner.text_batch).
_BATCH_CHARS = 256 * 1024
_DERIVED = ("timeline.csv", "timeline_detected.csv", "alerts_timeline.csv", "command.log")


class _Scanner:
    def __init__(self, index: IndicatorIndex, limits: Limits) -> None:
        self.index = index
        self.limits = limits
        self.budget = _Budget(limits.max_total_bytes)
        self.result = AttachmentScan()

    def problem(self, where: Location, reason: str) -> None:
        self.result.problems.append(Problem(where, reason))

    def hashes(self, data: bytes, where: Location) -> None:
        # Only the algorithms some indicator uses: most desks' files hold sha256 alone.
        lengths = self.index.digest_lengths()
        for length, algorithm in _DIGESTS:
            if length in lengths:
                digest = hashlib.new(algorithm, data, usedforsecurity=False).hexdigest()
                self.result.matches += self.index.match_hash(digest, where)

    def bytes_(self, name: str, data: bytes, where: Location, depth: int) -> None:
        lower = name.lower()
        if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
            self.zip_(data, where, depth)
        elif lower.endswith(".eml") or _looks_like_email(data):
            if depth >= self.limits.max_depth:
                self.problem(where, f"e-mail nested deeper than {self.limits.max_depth}")
                return
            try:
                self.email_(data, where, depth)
            except ZipLimitError:
                raise
            except Exception as exc:  # noqa: BLE001 - see below
                # The stdlib header parser has raised IndexError, AttributeError and
                # others on malformed headers; a hostile e-mail must not stop the scan.
                self.problem(where, f"e-mail not fully parsed ({type(exc).__name__})")
        elif lower.endswith(".json") or data.lstrip()[:1] in (b"{", b"["):
            self.json_file(lower.rpartition("/")[2], data, where)
        else:
            self.text(_decode(data), where)

    def text(self, text: str, where: Location) -> None:
        if len(text) > MAX_TEXT_CHARS:
            self.problem(where, f"text cut to the first {MAX_TEXT_CHARS} characters")
            text = text[:MAX_TEXT_CHARS]
        self.result.matches += self.index.scan_text(text, where)

    def zip_(self, data: bytes, where: Location, depth: int) -> None:
        if depth >= self.limits.max_depth:
            self.problem(where, f"archive nested deeper than {self.limits.max_depth}")
            return
        try:
            entries = read_zip(data, self.limits, self.budget)
        except (ZipLimitError, ZipFormatError) as exc:
            self.problem(where, str(exc))
            return
        basenames = {e.name.rpartition("/")[2].lower() for e in entries}
        if _is_mvt_folder(basenames):
            self.mvt_folder(entries, basenames, where)
            return
        for entry in entries:
            inner = where.inside(entry.name)
            self.hashes(entry.data, inner)
            self.bytes_(entry.name, entry.data, inner, depth + 1)

    def email_(self, data: bytes, where: Location, depth: int) -> None:
        message = email.message_from_bytes(data, policy=email.policy.default)
        for header, value in message.items():
            self.text(str(value), where.inside(f"header:{header}"))
        for number, part in enumerate(message.walk()):
            if number >= self.limits.max_mime_parts:
                self.problem(where, f"more than {self.limits.max_mime_parts} MIME parts")
                break
            if part.is_multipart():
                continue
            label = f"part {number}" + (f" ({part.get_filename()})" if part.get_filename() else "")
            inner = where.inside(label)
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            if len(payload) > self.limits.max_entry_bytes:
                self.problem(inner, "MIME part larger than the entry limit")
                continue
            try:
                self.budget.take(len(payload))
            except ZipLimitError as exc:
                self.problem(inner, str(exc))
                break
            self.hashes(payload, inner)
            if part.get_content_maintype() == "text" and not part.get_filename():
                self.text(_part_text(part, payload), inner)
            else:
                self.bytes_(part.get_filename() or "", payload, inner, depth + 1)

    def json_file(self, basename: str, data: bytes, where: Location) -> None:
        try:
            document = _load_json(data)
        except _JsonError:
            self.text(_decode(data), where)
            return
        if basename == "alerts.json" or basename.endswith("_detected.json"):
            self.claims(basename, document, where, rematch=True)
        elif basename == "info.json" and isinstance(document, dict) and "mvt_version" in document:
            self.result.mvt_version = str(document["mvt_version"])
        else:
            device = _looks_like_records(document)
            self.records(document, where.inside(device_output=device))

    def records(self, document: Any, where: Location) -> None:
        """Re-match structured data: each string whole, then as text."""
        try:
            strings = _strings(document, self.limits.max_json_nodes)
        except _JsonError as exc:
            self.problem(where, str(exc))
            return
        # Records repeat values (the same message, date, app): each distinct one is
        # asked once whether it could match; usually none can.
        could_match = self.index.could_match_value
        candidates = {value for value in set(map(itemgetter(1), strings))
                      if could_match(value.strip())}
        for pointer, value in strings if candidates else ():
            if value in candidates:
                self.result.matches += self.index.match_value(value, where.inside(pointer))
        batch: list[tuple[str, str]] = []
        size = 0
        for pointer, value in strings:
            if size + len(value) >= _BATCH_CHARS and batch:
                self.text_batch(batch, where)
                batch, size = [], 0
            if len(value) > MAX_TEXT_CHARS:
                self.problem(where.inside(pointer), "string longer than the text limit")
                continue
            batch.append((pointer, value))
            size += len(value) + 1
        if batch:
            self.text_batch(batch, where)

    def text_batch(self, batch: list[tuple[str, str]], where: Location) -> None:
        """Free-text search of many strings at once, then each match pinned to its string.

        One extraction over the joined strings costs far less than one per string
        (MVT files hold thousands). A candidate never spans the newline that joins two
        strings, so the joined search finds what separate ones would. Each match is then
        placed at the strings that contain its candidate (ignoring case); one written
        in a form that does not contain it (defanged, Unicode) stays at the file.
        """
        # Records repeat values (the same message, app, date): each distinct value is
        # searched once and its matches pinned to every pointer holding it.
        pointers_of: dict[str, list[str]] = {}
        for pointer, value in batch:
            pointers_of.setdefault(value, []).append(pointer)
        matches = self.index.scan_text("\n".join(pointers_of), where)
        if not matches:
            return
        order = {pointer: n for n, (pointer, _) in enumerate(batch)}
        lowered = [(value, value.lower()) for value in pointers_of]
        # Containing the candidate is not matching it ("/a/b.txt" is inside "/a/b.txtx"):
        # a value that contains it is scanned alone (rare: only values holding a
        # match) and the match pinned there only if that scan finds the indicator too.
        alone: dict[str, set[tuple[str, str]]] = {}
        for match in matches:
            needle = match.candidate.lower()
            wanted = match.key[:2]
            pointers: list[str] = []
            for value, low in lowered:
                if needle not in low:
                    continue
                if value not in alone:
                    alone[value] = {m.key[:2] for m in self.index.scan_text(value, where)}
                if wanted in alone[value]:
                    pointers += pointers_of[value]
            if not pointers:
                self.result.matches.append(match)
            for pointer in sorted(pointers, key=order.__getitem__):
                self.result.matches.append(replace(match, location=where.inside(pointer)))

    def claims(self, basename: str, document: Any, where: Location, *, rematch: bool) -> None:
        module = basename.removesuffix(".json").removesuffix("_detected")
        if not isinstance(document, list):
            self.problem(where, "MVT detections are not a list")
            return
        for number, item in enumerate(document[: self.limits.max_json_nodes]):
            if not isinstance(item, dict):
                continue
            at = where.inside(f"/{number}")
            v3 = "level" in item and "module" in item and "event" in item
            record = item.get("event") if v3 else item
            indicator = item.get("matched_indicator")
            if not isinstance(indicator, dict):
                indicator = {}
            self.result.claims.append(Claim(
                location=at, module=_text(item.get("module")) if v3 else module,
                level=_text(item.get("level")), message=_text(item.get("message")),
                indicator_value=_text(indicator.get("value")),
                indicator_type=_text(indicator.get("type")), family=_text(indicator.get("name")),
                stix2_file_name=_text(indicator.get("stix2_file_name")),
                mvt_format="v3" if v3 else "v2"))
            if rematch and isinstance(record, dict):
                clean = {k: v for k, v in record.items() if k != "matched_indicator"}
                self.records(clean, at.inside(device_output=True))

    def mvt_folder(self, entries: list[ZipEntry], basenames: set[str], where: Location) -> None:
        for entry in entries:
            base = entry.name.rpartition("/")[2].lower()
            inner = where.inside(entry.name, device_output=True)
            if base in _DERIVED:
                self.result.skipped.append(entry.name)
            elif base == "alerts.json" or base.endswith("_detected.json"):
                module = base.removesuffix("_detected.json")
                try:
                    document = _load_json(entry.data)
                except _JsonError as exc:
                    self.problem(inner, f"not JSON ({exc})")
                    continue
                records_sent = base == "alerts.json" or f"{module}.json" in basenames
                self.claims(base, document, inner, rematch=not records_sent)
            elif base.endswith(".json"):
                self.json_file(base, entry.data, inner)
            else:
                self.result.skipped.append(entry.name)


def _is_mvt_folder(basenames: set[str]) -> bool:
    return ("info.json" in basenames or "alerts.json" in basenames or "command.log" in basenames
            or any(b.endswith("_detected.json") for b in basenames))


def _looks_like_records(document: Any) -> bool:
    """A list of objects stamped like MVT module records (they carry ``isodate``)."""
    return (isinstance(document, list) and bool(document)
            and any(isinstance(r, dict) and "isodate" in r for r in document[:100]))


def _looks_like_email(data: bytes) -> bool:
    head = data[:2048].lower()
    return head.startswith((b"from:", b"received:", b"return-path:", b"message-id:",
                            b"delivered-to:", b"mime-version:", b"date:", b"subject:"))


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _part_text(part: EmailMessage, payload: bytes) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # a charset name Python does not know
        return _decode(payload)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def scan_attachment(index: IndicatorIndex, name: str, data: bytes, where: Location,
                    limits: Limits = Limits()) -> AttachmentScan:
    """Scan one attachment held in memory; never raises for what the bytes contain.

    ``where`` is the attachment's location in the report (field and name); locations
    of matches and claims extend it with the path inside. The attachment's own
    SHA-256 is matched by the caller from the report (the server records it); inner
    files' hashes (zip entries, MIME parts) are matched here.
    """
    scanner = _Scanner(index, limits)
    try:
        scanner.bytes_(name, data, where, 0)
    except ZipLimitError as exc:  # the total budget, hit in a nested part
        scanner.problem(where, str(exc))
    scanner.result.matches = dedupe(scanner.result.matches)
    scanner.result.claims = _dedupe_claims(scanner.result.claims)
    return scanner.result


def _dedupe_claims(claims: list[Claim]) -> list[Claim]:
    """One claim per detection: v3 writes each alert to ``<slug>_detected.json`` and
    again to ``alerts.json``; the first place it was read is kept."""
    seen: dict[tuple[str, ...], Claim] = {}
    for c in claims:
        seen.setdefault((c.module, c.level, c.message, c.indicator_value, c.indicator_type,
                         c.family, c.stix2_file_name, c.mvt_format), c)
    return list(seen.values())
