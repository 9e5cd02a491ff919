"""Import of ``desk-export`` bundles: verify, decrypt in memory, validate, store, ack.

Order of operations, each a gate for the next:

1. The bundle's signature is checked against the server key the vault trusts
   (keys.bundle.open_bundle) before a single byte of its manifest is parsed; a bad bundle
   is refused whole, nothing is imported and nothing is acknowledged.
2. ``index.json`` is parsed strictly (docs/transfer-format.md) and must be for this desk
   and name exactly the files the bundle holds.
3. Each item's files are copied into the vault as received (ciphertext). The document is
   decrypted in memory only and validated (journalist_client.schema); each attachment's
   age header must open with the desk identity.
4. An item that fails any check is *quarantined*: its ciphertext moves to quarantine/ and
   the reason is recorded. Nothing is lost: the server deletes its copy on the ack, so a
   quarantined item can always be described (:func:`describe_quarantined`), decrypted to
   a file or copied as ciphertext (:func:`export_quarantined`), and retried once the
   cause is fixed (:func:`retry_quarantined`).
5. The server's signed statement (index.json version 2) is taken in: items it holds for
   the desk before the export's cursor that never reached the vault, and items it deleted
   before they did (journalist_client.continuity, ADR 0007).
6. The vault is saved; only then is the ack bundle written, listing every item now held
   (imported, quarantined or already present), so the server never deletes ciphertext
   the desk does not durably have.

Importing the same bundle, or the same item in another bundle, again changes nothing.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tqdm import tqdm  # type: ignore[import-untyped]

from journalist_client import continuity
from journalist_client.indicators import match_item
from journalist_client.records import QuarantinedFile, QuarantinedItem, QuarantineEntry
from journalist_client.schema import (
    MAX_ATTACHMENTS,
    MAX_DOCUMENT_BYTES,
    DocumentError,
    parse_document,
    parse_json,
)
from journalist_client.triage import reindex_item
from journalist_client.vault import Vault, VaultError, now
from keys import fs, ids
from keys.age import (
    AgeError,
    ArmorError,
    HeaderError,
    HMACError,
    NoMatchError,
    PayloadError,
    decrypt,
    decrypt_stream,
)
from keys.bundle import BundleError, VerifiedBundle, open_bundle, write_bundle_file
from keys.keyring import MAX_KEYRING_BYTES, Keyring, KeyringError

__all__ = ["ImportRefused", "ImportResult", "QuarantineError", "age_failure",
           "describe_quarantined", "export_quarantined", "import_bundle", "parse_index",
           "quarantined", "retry_quarantined", "store_item"]

SERVER_ID: Final = "server"
# The age header and per-chunk tags add a little; a document ciphertext beyond this
# cannot hold a valid (≤ 1 MiB) document, so it is refused without decrypting it.
_MAX_DOC_CIPHERTEXT: Final = MAX_DOCUMENT_BYTES + 64 * 1024


class ImportRefused(Exception):
    """The bundle was refused as a whole; nothing was imported or acknowledged."""


class QuarantineError(Exception):
    """A quarantined item could not be found, described or exported; nothing was written."""


@dataclass
class ImportResult:
    bundle_id: str
    imported: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    ack_path: Path | None = None
    repeated_bundle: bool = False
    # False for an index.json of version 1, which states nothing to check continuity by.
    checked: bool = True
    # Items the server deleted before they reached this vault, first told by this bundle.
    losses: list[continuity.Loss] = field(default_factory=list)
    # What the server's keyring (index version 3) changed here, or would have (ADR 0011).
    keyring_notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexItem:
    id: str
    type: str
    day: str
    doc_file: str
    attachment_files: tuple[str, ...]


def age_failure(e: AgeError) -> str:
    """What a failing age layer means for the triager."""
    if isinstance(e, NoMatchError):
        return "not encrypted to this desk (no matching key in the age header)"
    if isinstance(e, HMACError):
        return "the age header was altered (header MAC does not match)"
    if isinstance(e, HeaderError):
        return f"not a valid age file (header: {e})"
    if isinstance(e, PayloadError):
        return f"the encrypted content is damaged or truncated (payload: {e})"
    if isinstance(e, ArmorError):
        return f"bad ASCII armor: {e}"
    return f"cannot be decrypted: {e}"


# Version 1 (before 0007) states nothing about what the server holds; version 2 adds
# the server's statement for the desk (journalist_client.continuity).
_INDEX_V1: Final = frozenset({"format", "version", "desk", "cursor", "items"})
_INDEX_V2: Final = _INDEX_V1 | {"after", "unacknowledged", "before_cursor",
                                "deleted_unacknowledged"}


def parse_index(raw: bytes, desk: str, names: list[str]
                ) -> tuple[str, list[IndexItem], continuity.Statement | None]:
    """Validate index.json; return (cursor, items, the server's statement or None)."""
    try:
        obj = parse_json(raw)
    except DocumentError as e:
        raise ImportRefused(f"index.json: {e}") from None
    if not isinstance(obj, dict) or obj.get("format") != "amana-desk-export" \
            or type(obj.get("version")) is not int or obj["version"] not in (1, 2, 3):
        raise ImportRefused("index.json: not an amana-desk-export version 1, 2 or 3")
    if set(obj) != (_INDEX_V1 if obj["version"] == 1 else _INDEX_V2):
        raise ImportRefused(f"index.json: wrong members for version {obj['version']}")
    if obj["desk"] != desk:
        shown = obj["desk"] if ids.is_desk_id(obj["desk"]) else "?"
        raise ImportRefused(f"this bundle is for desk {shown!r}, not {desk!r}: "
                           "it was fetched with the wrong desk's credential")
    if not isinstance(obj["cursor"], str) or len(obj["cursor"]) > 128:
        raise ImportRefused("index.json: cursor must be a string of at most 128 characters")
    if not isinstance(obj["items"], list):
        raise ImportRefused("index.json: items must be a list")
    items: list[IndexItem] = []
    listed: set[str] = set()
    seen: set[str] = set()
    for i, it in enumerate(obj["items"]):
        where = f"index.json: items[{i}]"
        if not isinstance(it, dict) or set(it) != {"id", "type", "day", "files"}:
            raise ImportRefused(f"{where} must have exactly id, type, day, files")
        iid = it["id"]
        if not ids.is_hex_id(iid) or iid in seen:
            raise ImportRefused(f"{where}.id must be 32 lower-case hex digits, once")
        seen.add(iid)
        if it["type"] not in ("report", "followup"):
            raise ImportRefused(f"{where}.type must be report or followup")
        if not isinstance(it["day"], str) or not ids.DAY_RE.fullmatch(it["day"]):
            raise ImportRefused(f"{where}.day must be YYYY-MM-DD")
        files = it["files"]
        if not isinstance(files, list) or not files or len(files) > MAX_ATTACHMENTS + 1:
            raise ImportRefused(f"{where}.files must list the document and its attachments")
        want = [f"{iid}.json.age", *(f"{iid}.a{n}.age" for n in range(1, len(files)))]
        if files != want:
            raise ImportRefused(f"{where}.files must be exactly {want[:3]}…")
        listed.update(files)
        items.append(IndexItem(iid, it["type"], it["day"], files[0], tuple(files[1:])))
    # Version 3: the bundle also carries the server's keyring (ADR 0011), read by
    # adopt_server_keyring after the items.
    if obj["version"] == 3 and "keyring.json" not in names:
        raise ImportRefused("index.json version 3 but the bundle has no keyring.json")
    carried = set(names) - {"index.json", *(("keyring.json",) if obj["version"] == 3 else ())}
    if carried != listed:
        raise ImportRefused(
            f"index.json and the bundle disagree: {len(carried - listed)} file(s) not listed, "
            f"{len(listed - carried)} listed file(s) missing"
        )
    try:
        statement = continuity.parse_statement(obj) if obj["version"] >= 2 else None
    except continuity.StatementError as e:
        raise ImportRefused(str(e)) from None
    return obj["cursor"], items, statement


def _known(vault: Vault, item_id: str) -> bool:
    return vault.conn.execute(
        "SELECT 1 FROM items WHERE id = ? UNION SELECT 1 FROM quarantine WHERE item_id = ?",
        (item_id, item_id),
    ).fetchone() is not None


class _Quarantine(Exception):
    pass


def _check_attachment_header(vault: Vault, path: Path) -> None:
    with open(path, "rb") as f:
        try:
            # Reads and authenticates the header only; the payload is checked (and its
            # SHA-256 compared) when a triager exports the attachment.
            decrypt_stream(f, [vault.keys.identity], armored=False)
        except AgeError as e:
            raise _Quarantine(f"attachment {path.name.split('.')[-2]}: {age_failure(e)}") from None


def _open_document(vault: Vault, ciphertext: bytes, item_type: str,
                   attachments: int, item_id: str) -> dict[str, Any]:
    """Decrypt (in memory) and validate one document, or raise _Quarantine with the reason."""
    try:
        plain = decrypt(ciphertext, [vault.keys.identity], armored=False)
    except AgeError as e:
        raise _Quarantine(f"document: {age_failure(e)}") from None
    try:
        doc = parse_document(plain, expected_type=item_type)
    except DocumentError as e:
        raise _Quarantine(f"document: {e}") from None
    except (TypeError, ValueError, RecursionError) as e:
        # A validation gap must cost one quarantined item, never the whole bundle.
        raise _Quarantine(f"document: malformed ({type(e).__name__})") from None
    if len(doc["attachments"]) != attachments:
        raise _Quarantine(f"document lists {len(doc['attachments'])} attachment(s) but the "
                          f"bundle carries {attachments}")
    # The server files a report or follow-up under the id written inside it; only a
    # referral (re-encrypted by another desk, filed anew) carries its original id. A
    # mismatch elsewhere is one ciphertext replayed under a new id: a duplicate case.
    if "referral" not in doc and doc["submission_id"] != item_id:
        raise _Quarantine("document's submission_id does not match its index entry")
    return doc


def _import_item(vault: Vault, b: VerifiedBundle, it: IndexItem) -> None:
    files_dir = vault.dir("files")
    entry = {e.name: e for e in b.files}[it.doc_file]
    if entry.size > _MAX_DOC_CIPHERTEXT:
        raise _Quarantine(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    ciphertext = b.read(it.doc_file, max_size=_MAX_DOC_CIPHERTEXT)
    doc = _open_document(vault, ciphertext, it.type, len(it.attachment_files), it.id)
    fs.write_unsynced(fs.safe_join(files_dir, it.doc_file), ciphertext)
    for name in it.attachment_files:
        b.extract(name, fs.safe_join(files_dir, name), overwrite=True)
    for name in it.attachment_files:
        _check_attachment_header(vault, fs.safe_join(files_dir, name))

    store_item(vault, it.id, it.type, doc, b.id, it.attachment_files)


def store_item(vault: Vault, item_id: str, item_type: str, doc: dict[str, Any], bundle_id: str,
               attachment_files: tuple[str, ...]) -> None:
    """Add a validated document to the database, the search index and the indicator matches."""
    a = doc.get("answers", {})
    cur = vault.conn.execute(
        "INSERT INTO items (id, type, received_day, language, category, country, desks, "
        "reply_recipient, doc, bundle_id, imported_at, status, severity, triage_category, "
        "assignee) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', '')",
        (item_id, item_type, doc["received_day"], doc["language"], a.get("category", ""),
         a.get("country", ""), json.dumps(doc["desks"]), doc["reply_recipient"],
         json.dumps(doc, ensure_ascii=False), bundle_id, now(),
         "new" if item_type == "report" else ""),
    )
    for n, (att, name) in enumerate(zip(doc["attachments"], attachment_files,
                                        strict=True), start=1):
        vault.conn.execute(
            "INSERT INTO attachments (item_id, n, name, media_type, size, sha256, file) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item_id, n, att["name"], att["media_type"], att["size"], att["sha256"], name),
        )
    row = vault.conn.execute("SELECT * FROM items WHERE n = ?", (cur.lastrowid,)).fetchone()
    cols = [d[1] for d in vault.conn.execute("PRAGMA table_info(items)")]
    reindex_item(vault.conn, dict(zip(cols, row, strict=True)))
    # Every item is matched against the desk's spyware indicators as it arrives: its
    # text, its attachments' recorded hashes, and the attachments themselves, in memory.
    match_item(vault, item_id)


def _quarantine(vault: Vault, b: VerifiedBundle, it: IndexItem, reason: str) -> None:
    kept: list[str] = []
    for name in (it.doc_file, *it.attachment_files):
        target = f"{b.id[:12]}-{name}"
        # A leftover of an interrupted import of this very bundle: same verified bytes.
        fs.safe_unlink(vault.dir("quarantine"), target)
        src = fs.safe_join(vault.dir("files"), name)
        if src.exists():
            fs.move_durable(src, vault.dir("quarantine"), target)
        else:
            b.extract(name, fs.safe_join(vault.dir("quarantine"), target), overwrite=True)
        kept.append(target)
    vault.conn.execute(
        "INSERT INTO quarantine (bundle_id, item_id, type, files, reason, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (b.id, it.id, it.type, json.dumps(kept), reason, now()),
    )


def quarantined(vault: Vault) -> list[QuarantineEntry]:
    """The items refused on import, oldest first, with why and which files were kept."""
    rows = vault.conn.execute("SELECT item_id, type, at, reason, files FROM quarantine "
                              "ORDER BY n")
    return [QuarantineEntry(item_id=item_id, type=kind, at=at, reason=reason,
                            files=tuple(json.loads(files)))
            for item_id, kind, at, reason, files in rows]


def _quarantine_row(vault: Vault, item_id: str) -> tuple[str, str, str, str, str, list[str]]:
    """(item id, type, at, reason, bundle id, kept files) of the item ``item_id`` names,
    whole or by its start (at least 6 hex characters)."""
    if not isinstance(item_id, str) or not (6 <= len(item_id) <= 32) \
            or not ids.is_hex_id(item_id.ljust(32, "0")):
        raise QuarantineError("an id is 6 to 32 lower-case hex characters (the start is enough)")
    rows = vault.conn.execute(
        "SELECT item_id, type, at, reason, bundle_id, files FROM quarantine "
        "WHERE item_id LIKE ? ORDER BY n LIMIT 2", (item_id + "%",)).fetchall()
    if not rows:
        raise QuarantineError(f"nothing quarantined has id {item_id}")
    if len(rows) > 1:
        raise QuarantineError(f"id {item_id} is ambiguous: type more of it")
    iid, kind, at, reason, bundle_id, files = rows[0]
    return iid, kind, at, reason, bundle_id, json.loads(files)


def describe_quarantined(vault: Vault, item_id: str) -> QuarantinedItem:
    """What is known of a quarantined item without showing any of its content: the
    reason, and for each kept file its size and whether its age header opens."""
    iid, kind, at, reason, bundle_id, kept = _quarantine_row(vault, item_id)
    files = []
    for n, name in enumerate(kept):
        path = fs.safe_join(vault.dir("quarantine"), name)
        problem = ""
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                decrypt_stream(f, [vault.keys.identity], armored=False)
        except AgeError as e:
            problem = age_failure(e)
        except FileNotFoundError:
            size, problem = 0, "the file is missing from quarantine/"
        files.append(QuarantinedFile(n=n, file=name, size=size, opens=not problem,
                                     problem=problem))
    return QuarantinedItem(item_id=iid, type=kind, at=at, reason=reason, bundle_id=bundle_id,
                           files=tuple(files))


def export_quarantined(vault: Vault, item_id: str, out: str | os.PathLike[str], *,
                       number: int = 0, ciphertext: bool = False) -> tuple[Path, int]:
    """Write file ``number`` (0 the document, 1… the attachments) of a quarantined item
    to the new file ``out`` (0600): decrypted, or with ``ciphertext`` as kept (for a
    file this desk cannot decrypt). Returns (path, bytes written).

    The content failed a check on import, so it is only ever written out, never parsed
    or shown; a payload that does not authenticate leaves nothing behind.
    """
    iid, _, _, _, _, kept = _quarantine_row(vault, item_id)
    if not 0 <= number < len(kept):
        raise QuarantineError(f"item {iid[:12]} kept {len(kept)} file(s): the document (0) "
                              f"and {len(kept) - 1} attachment(s); there is no number {number}")
    out_path = Path(out)
    if os.path.lexists(out_path):
        raise QuarantineError(f"{out_path} already exists: choose a new file name")
    written = 0
    try:
        with open(fs.safe_join(vault.dir("quarantine"), kept[number]), "rb") as src, \
                fs.AtomicWriter(out_path) as w:
            chunks = iter(lambda: src.read(1 << 20), b"") if ciphertext else \
                decrypt_stream(src, [vault.keys.identity], armored=False)
            for chunk in chunks:
                w.write(chunk)
                written += len(chunk)
    except AgeError as e:
        raise QuarantineError(f"file {number}: {age_failure(e)}; nothing was written "
                              "(--ciphertext exports it as kept)") from None
    except fs.FileExistsRefused:
        raise QuarantineError(f"{out_path} already exists: choose a new file name") from None
    except FileNotFoundError as e:
        raise QuarantineError(f"{e.filename}: {e.strerror}") from None
    return out_path, written


def retry_quarantined(vault: Vault) -> tuple[list[str], list[tuple[str, str]]]:
    """Try every quarantined item again (after a key or client update); save if any moved.

    Returns (imported ids, [(id, reason)] still quarantined). An item that now passes
    every check moves back from quarantine/ into files/ under its bundle name.
    """
    imported: list[str] = []
    still: list[tuple[str, str]] = []
    rows = vault.conn.execute(
        "SELECT n, bundle_id, item_id, type, files FROM quarantine ORDER BY n").fetchall()
    qdir = vault.dir("quarantine")
    for n, bundle_id, item_id, item_type, files in rows:
        kept: list[str] = json.loads(files)
        prefix = f"{bundle_id[:12]}-"
        names = tuple(k.removeprefix(prefix) for k in kept)
        try:
            doc_path = fs.safe_join(qdir, kept[0])
            if doc_path.stat().st_size > _MAX_DOC_CIPHERTEXT:
                raise _Quarantine(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
            doc = _open_document(vault, doc_path.read_bytes(), item_type, len(kept) - 1,
                                 item_id)
            for k in kept[1:]:
                _check_attachment_header(vault, fs.safe_join(qdir, k))
        except _Quarantine as q:
            vault.conn.execute("UPDATE quarantine SET reason = ?, at = ? WHERE n = ?",
                               (str(q), now(), n))
            vault.changed()
            still.append((item_id, str(q)))
            continue
        for k, name in zip(kept, names, strict=True):
            fs.safe_unlink(vault.dir("files"), name)  # a leftover of a crashed import
            fs.move_durable(fs.safe_join(qdir, k), vault.dir("files"), name)
        store_item(vault, item_id, item_type, doc, bundle_id, names[1:])
        vault.conn.execute("DELETE FROM quarantine WHERE n = ?", (n,))
        imported.append(item_id)
    if vault.is_changed:
        vault.save()
    return imported, still


def _write_ack(vault: Vault, path: Path, ids: list[str]) -> None:
    body = json.dumps({"format": "amana-ack", "version": 1, "desk": vault.desk_id, "ids": ids},
                      separators=(",", ":")).encode("ascii")
    write_bundle_file(path, "ack", vault.desk_id, [("ack.json", io.BytesIO(body))],
                      vault.keys.signing_key)


def _import_items(vault: Vault, b: VerifiedBundle, result: ImportResult,
                  progress: bool | None, on_item: Callable[[int, int], None] | None
                  ) -> tuple[str, list[IndexItem], continuity.Statement | None]:
    if "index.json" not in b.names:
        raise ImportRefused("refused: the bundle has no index.json")
    cursor, items, statement = parse_index(b.read("index.json", max_size=MAX_DOCUMENT_BYTES),
                                vault.desk_id, b.names)
    # disable=None: a progress bar on a terminal, none in a pipe or a log.
    for done, it in enumerate(tqdm(items, desc="importing", unit="item",
                                   disable=progress is False or None, leave=False)):
        if on_item is not None:
            on_item(done, len(items))
        if _known(vault, it.id):
            result.already.append(it.id)
            continue
        try:
            _import_item(vault, b, it)
            result.imported.append(it.id)
        except _Quarantine as q:
            _quarantine(vault, b, it, str(q))
            result.quarantined.append((it.id, str(q)))
    return cursor, items, statement


def import_bundle(vault: Vault, path: str | Path, *, progress: bool | None = None,
                  ack_out: Path | None = None,
                  on_item: Callable[[int, int], None] | None = None) -> ImportResult:
    """Import one desk-export bundle into the vault, save it, and write the ack bundle.

    ``on_item(done, total)`` is called before each item (the local UI's progress page,
    which has no terminal for the progress bar).
    """
    try:
        server = vault.server_key()
    except VaultError as e:
        raise ImportRefused(str(e)) from None
    if ack_out is not None and os.path.lexists(ack_out):
        raise ImportRefused(f"{ack_out} already exists: choose another --ack-out")
    try:
        b = open_bundle(path, {SERVER_ID: server}, kind="desk-export")
    except BundleError as e:
        raise ImportRefused(f"refused {Path(path).name}: {e}. Nothing was imported.") from None
    except OSError as e:
        raise ImportRefused(f"cannot read {path}: {e.strerror}") from None
    with b:
        result = ImportResult(bundle_id=b.id)
        default_ack = vault.dir("acks") / f"ack-{b.id[:12]}.bundle"
        seen = vault.conn.execute("SELECT ack_file FROM bundles WHERE id = ?", (b.id,)).fetchone()
        if seen is not None:
            result.repeated_bundle = True
            result.ack_path = Path(seen[0])
            if not os.path.lexists(result.ack_path):
                # Saved, then interrupted before the ack was written (or the ack was
                # lost): write it again, it only lists what the vault already holds.
                try:
                    _, items, _ = parse_index(
                        b.read("index.json", max_size=MAX_DOCUMENT_BYTES), vault.desk_id,
                        b.names)
                except BundleError as e:
                    raise ImportRefused(f"refused {Path(path).name}: {e}") from None
                _write_ack(vault, result.ack_path, [it.id for it in items])
            return result
        vault.conn.commit()  # what came before this import is not ours to roll back
        try:
            cursor, items, statement = _import_items(vault, b, result, progress, on_item)
            # After this bundle's own items are stored: they count as held.
            if statement is None:
                result.checked = False
            else:
                result.losses = continuity.record(vault, b.id, statement)
            if "keyring.json" in b.names:
                try:
                    offered = Keyring.from_json(b.read("keyring.json",
                                                       max_size=MAX_KEYRING_BYTES))
                except KeyringError as e:
                    raise ImportRefused(f"refused {Path(path).name}: the server's "
                                        f"keyring.json is invalid: {e}") from None
                result.keyring_notes = vault.adopt_keyring(offered)
        except BundleError as e:
            # The file changed on disk after it was verified (a failing USB stick, or
            # tampering): nothing of this bundle is kept.
            vault.conn.rollback()
            raise ImportRefused(f"refused {Path(path).name}: {e}. Nothing was imported.") \
                from None
        except BaseException:
            vault.conn.rollback()
            raise
        ack_path = ack_out or default_ack
        vault.conn.execute(
            "INSERT INTO bundles (id, kind, created, imported_at, items, quarantined, ack_file) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (b.id, b.kind, b.created, now(), len(result.imported), len(result.quarantined),
             str(ack_path)),
        )
        vault.set_meta("cursor", cursor)
        fs.sync_all()  # the ciphertext the database will refer to, before the database
        vault.save()
        _write_ack(vault, ack_path, [it.id for it in items])
        result.ack_path = ack_path
        return result
