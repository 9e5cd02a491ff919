"""What the staff app and the operator's USB commands do with bundles.

One implementation for both routes in: the staff onion (app.py) and an operator with
shell access and a USB stick (``intake-server export`` / ``intake-server import``).
Bundles are verified (keys.bundle: signature first, then every file's hash) before
any JSON inside is parsed, and every item is checked before anything is changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from intake_server.storage import immediate_transaction
from keys import fs, strict_json
from keys.age import parse_recipient
from keys.bundle import BundleError, VerifiedBundle, open_bundle, write_bundle_file
from keys.ids import is_hex_id
from keys.keyring import Keyring, PreviousKey
from keys.signing import SigningKey, VerifyKey

from .store import DeskStatement, ExportItem, StaffStore, index_document

__all__ = [
    "BundleRefused",
    "apply_ack_bundle",
    "apply_bundle",
    "apply_outbox_bundle",
    "build_export",
    "desk_keys",
    "lost_key_item_ids",
    "lost_key_items",
    "write_export",
]

_MAX_ACK_IDS = 10_000
_MAX_DOC = 2 * 1024 * 1024


class BundleRefused(ValueError):
    """The bundle is not acceptable; nothing was changed. The message says why."""


def desk_keys(keyring: Keyring, desk: str | None = None) -> dict[str, VerifyKey]:
    """Trusted signing keys: one desk's, or every desk's (for USB imports)."""
    desks = [d for d in keyring.desks if desk is None or d.id == desk]
    if not desks:
        raise BundleRefused(f"unknown desk {desk!r}")
    return {d.id: d.verify_key_obj() for d in desks}


def _waiting(store: StaffStore, desk: str, until_day: str) -> list[str]:
    """Ids of items for ``desk`` from ``until_day`` or earlier it has not acknowledged."""
    rows = store.storage.db.execute(
        "SELECT s.id FROM submissions s"
        " JOIN submission_desks d ON d.submission_id = s.id AND d.desk_id = ?"
        " WHERE s.day <= ? AND NOT EXISTS"
        "  (SELECT 1 FROM acks a WHERE a.submission_id = s.id AND a.desk_id = ?)",
        (desk, until_day, desk),
    ).fetchall()
    return [r[0] for r in rows]


def _draining(store: StaffStore, keyring: Keyring, desks: Mapping[str, VerifyKey]
              ) -> dict[str, tuple[str, PreviousKey]]:
    """The previous keys still trusted, by raw key: (desk, record) for each previous key
    of ``desks`` replaced with a transition statement (never a lost key) while items
    encrypted to it, those of its replacement day or earlier, are not all acknowledged
    (docs/adr/0011-key-rotation.md). Once they are, the key is trusted no more."""
    out: dict[str, tuple[str, PreviousKey]] = {}
    for desk_id in desks:
        desk = keyring.get(desk_id)
        if desk is None:
            continue
        for prev in desk.previous:
            if not prev.lost_key and _waiting(store, desk_id, prev.replaced):
                out[str(prev.verify_key)] = (desk_id, prev)
    return out


def _open_desk_bundle(
    store: StaffStore, path: Path, trusted: Mapping[str, VerifyKey], kind: str,
    keyring: Keyring | None,
) -> tuple[VerifiedBundle, PreviousKey | None]:
    """Open a desk's bundle with its current key or, failing that, a previous key that
    is still draining; the second value is that previous key's record, if it was one."""
    try:
        return open_bundle(path, trusted, kind=kind), None
    except BundleError:
        if keyring is None:
            raise
        draining = _draining(store, keyring, trusted)
        for desk_id, prev in draining.values():
            try:
                return open_bundle(path, {desk_id: prev.verify_key_obj()}, kind=kind), prev
            except BundleError:
                continue
        raise


def lost_key_item_ids(store: StaffStore, keyring: Keyring, desk_id: str) -> list[str]:
    """The items the server holds for ``desk_id``, unacknowledged, from the day its last
    lost key was replaced or earlier: encrypted to a key no one has any more."""
    desk = keyring.get(desk_id)
    lost = [p.replaced for p in desk.previous if p.lost_key] if desk is not None else []
    return _waiting(store, desk_id, max(lost)) if lost else []


def lost_key_items(store: StaffStore, keyring: Keyring) -> dict[str, int]:
    """For each desk with a lost previous key, how many items :func:`lost_key_item_ids`
    finds (desks with none are left out)."""
    counts = {d.id: len(lost_key_item_ids(store, keyring, d.id)) for d in keyring.desks}
    return {desk: n for desk, n in counts.items() if n}


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def read(self, n: int = -1) -> bytes:
        n = len(self._data) if n < 0 else n
        chunk, self._data = self._data[:n], self._data[n:]
        return bytes(chunk)


def build_export(
    store: StaffStore,
    desk: str,
    after: int,
    signing_key: SigningKey,
    *,
    out: Path,
    keyring: Keyring | None = None,
) -> tuple[Path, int, list[ExportItem]]:
    """The desk-export bundle of everything after ``after``, written to ``out`` (for the
    operator's USB export); returns (path, cursor, items). The staff app serves from the
    cache in outgoing/ instead (StaffStore.cached_export, write_export)."""
    items = store.pending(desk, after)
    statement = store.statement(desk, after)
    upto = items[-1].seq if items else after
    write_export(store, out, desk, after, upto, items, statement, signing_key, keyring=keyring)
    return out, upto, items


def write_export(
    store: StaffStore,
    path: Path,
    desk: str,
    after: int,
    upto: int,
    items: list[ExportItem],
    statement: DeskStatement,
    signing_key: SigningKey,
    *,
    keyring: Keyring | None = None,
) -> bool:
    """Write the bundle of ``items`` to ``path``; False if it already exists there.

    Touches files only, never the database connection or the counters, which belong to
    the event loop's thread: the staff app runs this on a worker thread. The store's
    ciphertext is read without updating its access time (see :func:`_read_quietly`).
    A bundle that appears at ``path`` meanwhile (a concurrent builder won) is kept and
    this one discarded: every requester then gets the same bytes. Given the keyring, the
    bundle carries it as keyring.json (index.json version 3), so that desks learn of key
    rotations from the server's signature (docs/adr/0011-key-rotation.md).
    """
    version = 2 if keyring is None else 3
    files: list[tuple[str, Any]] = [
        ("index.json", _BytesSource(index_document(desk, str(after), str(upto), items,
                                                   statement, version=version)))
    ]
    if keyring is not None:
        files.append(("keyring.json", _BytesSource(keyring.to_json())))
    opened: list[BinaryIO] = []
    try:
        for item in items:
            for name, file_id in _export_names(item):
                opened.append(_read_quietly(store.storage.store_path(file_id)))
                files.append((name, opened[-1]))
        try:
            write_bundle_file(path, "desk-export", "server", files, signing_key)
        except fs.FileExistsRefused:
            return False
    finally:
        for f in opened:
            f.close()
    return True


def _export_names(item: ExportItem) -> list[tuple[str, str]]:
    names = [(f"{item.id}.json.age", item.report_file)]
    for n, file_id in enumerate(item.attachment_files, start=1):
        names.append((f"{item.id}.a{n}.age", file_id))
    return names


def _read_quietly(path: Path) -> BinaryIO:
    """Open a store file for reading without updating its access time.

    Its atime is midnight of its day, older than its ctime, so with relatime the first
    read would set it to the second of the fetch. O_NOATIME needs the file's owner,
    which the server is; where it is refused this falls back to a normal read."""
    return os.fdopen(fs.open_quietly(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")


def _load_json(raw: bytes, fmt: str) -> dict[str, Any]:
    try:
        doc = strict_json.loads(raw, max_bytes=_MAX_DOC, max_depth=4)
    except strict_json.StrictJSONError as exc:
        raise BundleRefused(f"{fmt}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt or doc.get("version") != 1:
        raise BundleRefused(f"{fmt}: wrong format or version")
    return doc


def apply_ack_bundle(
    store: StaffStore, path: Path, trusted: Mapping[str, VerifyKey],
    keyring: Keyring | None = None,
) -> dict[str, Any]:
    """Acknowledge the ids of an ack bundle signed by the desk's key. Given the keyring, a
    bundle signed by a previous key of the desk that is still draining is accepted too,
    for the items encrypted to that key (those of its replacement day or earlier) only."""
    previous: PreviousKey | None = None
    try:
        bundle, previous = _open_desk_bundle(store, path, trusted, "ack", keyring)
        with bundle:
            desk = bundle.creator
            if bundle.names != ["ack.json"]:
                raise BundleRefused("an ack bundle holds exactly ack.json")
            doc = _load_json(bundle.read("ack.json", max_size=_MAX_DOC), "amana-ack")
    except BundleError as exc:
        raise BundleRefused(str(exc)) from None
    ids = doc.get("ids")
    if (
        set(doc) != {"format", "version", "desk", "ids"}
        or doc.get("desk") != desk
        or not isinstance(ids, list)
        or len(ids) > _MAX_ACK_IDS
        or not all(is_hex_id(i) for i in ids)
    ):
        raise BundleRefused("ack.json is malformed")
    if previous is not None:
        allowed = set(_waiting(store, desk, previous.replaced))
        ids = [i for i in ids if i in allowed]
    acked, deleted = store.acknowledge(desk, ids)
    return {"desk": desk, "acknowledged": acked, "deleted": deleted}


def _check_outbox(
    doc: dict[str, Any], desk: str, names: set[str], keyring: Keyring
) -> list[dict[str, Any]]:
    items = doc.get("items")
    if set(doc) != {"format", "version", "desk", "items"} or doc.get("desk") != desk:
        raise BundleRefused("outbox.json is malformed")
    if not isinstance(items, list) or len(items) > 1000:
        raise BundleRefused("outbox.json items are malformed")
    checked = []
    used = {"outbox.json"}
    for item in items:
        if not isinstance(item, dict) or item.get("type") not in ("reply", "referral"):
            raise BundleRefused("outbox item type must be reply or referral")
        if not is_hex_id(item.get("id")):
            raise BundleRefused("outbox item id is malformed")
        if item["type"] == "reply":
            if set(item) != {"type", "id", "to", "file"}:
                raise BundleRefused("outbox reply item is malformed")
            if item["file"] != f"{item['id']}.reply.age" or item["file"] not in names:
                raise BundleRefused("outbox reply file is missing")
            # parse_recipient takes text: anything else in the JSON is refused here,
            # before it can raise something other than ValueError.
            if not isinstance(item["to"], str):
                raise BundleRefused("outbox reply recipient is malformed")
            try:
                parse_recipient(item["to"])
            except (ValueError, TypeError):
                raise BundleRefused("outbox reply recipient is malformed") from None
            files = [item["file"]]
        else:
            if set(item) != {"type", "id", "to_desk", "files"}:
                raise BundleRefused("outbox referral item is malformed")
            to_desk = item["to_desk"]
            if not isinstance(to_desk, str) or keyring.get(to_desk) is None:
                raise BundleRefused("a referral must name a desk of the keyring")
            if to_desk == desk:
                raise BundleRefused("a desk cannot refer a report to itself")
            files = item["files"]
            if (
                not isinstance(files, list)
                or not 1 <= len(files) <= 1001
                or files != [f"{item['id']}.json.age",
                             *(f"{item['id']}.a{n}.age" for n in range(1, len(files)))]
                or not set(files) <= names
            ):
                raise BundleRefused("outbox referral files are missing or misnamed")
        if used & set(files):
            raise BundleRefused("an outbox file is named by two items")
        used.update(files)
        checked.append(item)
    if used != names:
        raise BundleRefused("outbox bundle holds files no item names")
    return checked


def apply_outbox_bundle(
    store: StaffStore,
    path: Path,
    trusted: Mapping[str, VerifyKey],
    keyring: Keyring,
) -> dict[str, Any]:
    """Replies for sources and referrals to other desks. Every item is checked before any
    is stored; referrals need the keyring (the desks they may go to). A bundle is applied
    once: delivering the same signed bundle again is refused. A desk's previous key that
    is still draining may sign one, as for acks (the desk's replies to what it reads).

    All or nothing: the record that the bundle was delivered and the rows of all its
    items are one transaction, committed after every file is durable in place. A crash
    or a failure midway leaves the bundle undelivered, so the transfer machine's retry
    delivers all of it (the desk's vault counts it as sent); the files the transaction
    did not record are removed here, or by the next start after a crash.
    """
    counts = {"replies": 0, "referrals": 0}
    written: list[Path] = []
    try:
        bundle, _ = _open_desk_bundle(store, path, trusted, "outbox", keyring)
        with bundle:
            desk = bundle.creator
            doc = _load_json(bundle.read("outbox.json", max_size=_MAX_DOC), "amana-outbox")
            items = _check_outbox(doc, desk, set(bundle.names), keyring)
            with immediate_transaction(store.storage.db.conn):
                if not store.claim_bundle(bundle.id):
                    raise BundleRefused("this outbox bundle was already delivered")
                for item in items:
                    if item["type"] == "reply":
                        reply_id = store.store_reply(
                            reply_recipient=item["to"],
                            desk=desk,
                            write=_extractor(bundle, item["file"]),
                        )
                        written.append(store.reply_path(reply_id))
                        counts["replies"] += 1
                    else:
                        sid = store.file_referral(
                            to_desk=item["to_desk"],
                            writers=[_extractor(bundle, n) for n in item["files"]],
                        )
                        written += store.submission_files(sid)
                        counts["referrals"] += 1
            written.clear()  # committed: recorded, and no longer ours to remove
    except BaseException as exc:
        store.remove_unrecorded(written)
        if isinstance(exc, BundleError):
            raise BundleRefused(str(exc)) from None
        raise
    return {"desk": desk, **counts}


def _extractor(bundle: VerifiedBundle, name: str) -> Callable[[Path], Any]:
    return lambda dest: bundle.extract(name, dest)


def apply_bundle(store: StaffStore, path: Path, keyring: Keyring) -> dict[str, Any]:
    """For USB imports: an ack or outbox bundle from any desk of the keyring."""
    trusted = desk_keys(keyring)
    try:
        for kind in ("ack", "outbox"):
            try:
                opened, _ = _open_desk_bundle(store, path, trusted, kind, keyring)
            except BundleError:
                continue
            opened.close()
            break
        else:
            with open_bundle(path, trusted) as bundle:  # says why it is refused
                kind = bundle.kind
    except BundleError as exc:
        raise BundleRefused(str(exc)) from None
    if kind == "ack":
        return {"kind": kind, **apply_ack_bundle(store, path, trusted, keyring)}
    if kind == "outbox":
        return {"kind": kind, **apply_outbox_bundle(store, path, trusted, keyring)}
    raise BundleRefused(f"a {kind!r} bundle cannot be imported into the server")
