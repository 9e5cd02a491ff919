"""Replies to sources, referrals to other desks, and the outbox that carries both.

A reply is encrypted at once (to the source's reply recipient and to this desk, so the
desk can read its own thread) and only its ciphertext waits in ``outbox/``; the body is
also kept in the encrypted vault for ``show``. A referral re-encrypts the report document
(with the referring desk's note added as ``referral``) and each attachment, streaming,
to another desk of the keyring; this desk cannot read the result. ``outbox bundle``
writes every pending item into one bundle signed by the desk's signing key
(docs/transfer-format.md, ``outbox``) and marks them sent.
"""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path
from typing import Any, Final

from journalist_client.importer import age_failure
from journalist_client.records import OutboxEntry
from journalist_client.triage import (
    TriageError,
    get_item,
    record_consent_override,
    set_fields,
)
from journalist_client.vault import Vault, now, today
from keys import fs
from keys.age import (
    AgeError,
    Encryptor,
    Recipient,
    decrypt,
    decrypt_stream,
    encrypt,
    parse_recipient,
)
from keys.bundle import write_bundle_file

__all__ = [
    "MAX_OVERRIDE_REASON_CHARS",
    "MAX_REPLY_CHARS",
    "OutboxError",
    "add_reply",
    "bundle_outbox",
    "list_outbox",
    "read_own_reply",
    "refer",
]

MAX_REPLY_CHARS: Final = 64 * 1024
#: An override's reason is one line in the history, shown with the report.
MAX_OVERRIDE_REASON_CHARS: Final = 1000


class OutboxError(Exception):
    """The reply, referral or outbox bundle could not be made; nothing was queued."""


def _item_report(vault: Vault, item_id: str) -> dict[str, Any]:
    item = get_item(vault, item_id)
    if item["type"] != "report":
        raise TriageError("reply to and refer the report itself, not a follow-up")
    return item


def add_reply(vault: Vault, item_id: str, body: str) -> str:
    """Queue a reply to the source of a report; return the reply id."""
    item = _item_report(vault, item_id)
    if not body.strip():
        raise OutboxError("the reply is empty: nothing was queued")
    if len(body) > MAX_REPLY_CHARS:
        raise OutboxError(f"a reply is at most {MAX_REPLY_CHARS} characters")
    reply_id = secrets.token_hex(16)
    doc = {"format": "amana-reply", "version": 1, "desk": vault.desk_id, "day": today(),
           "body": body}
    recipients = _reply_recipients(vault, item)
    try:
        ciphertext = encrypt(json.dumps(doc, ensure_ascii=False).encode("utf-8"), recipients)
    except ValueError as e:
        raise OutboxError(f"cannot encrypt the reply: {e}") from None
    name = f"{reply_id}.reply.age"
    fs.atomic_write_bytes(fs.safe_join(vault.dir("outbox"), name), ciphertext)
    vault.conn.execute("INSERT INTO replies (id, item_id, at, author, body) VALUES (?, ?, ?, ?, ?)",
                       (reply_id, item["id"], now(), vault.user, body))
    vault.conn.execute(
        "INSERT INTO outbox (id, type, item_id, to_recipient, to_desk, files, note, at, author, "
        "bundle_id) VALUES (?, 'reply', ?, ?, '', ?, '', ?, ?, '')",
        (reply_id, item["id"], item["reply_recipient"], json.dumps([name]), now(), vault.user),
    )
    vault.changed()
    return reply_id


def _reply_recipients(vault: Vault, item: dict[str, Any]) -> list[Recipient]:
    """The source's reply recipient of this desk's kind, and the desk itself.

    The desk is a recipient so that it can read its own thread later. A post-quantum
    desk encrypts to the source's post-quantum reply recipient: age refuses to mix the
    kinds in one file, and a classic stanza would open the reply to an adversary who
    records it now and has a quantum computer later. A post-quantum keyring's server
    puts that recipient in every report and follow-up; the newest in the thread is used.
    """
    desk = parse_recipient(vault.keys.desk.recipient)
    if desk.label != "postquantum":
        return [parse_recipient(item["reply_recipient"]), desk]
    rows = vault.conn.execute(
        "SELECT doc FROM items WHERE reply_recipient = ? ORDER BY n DESC",
        (item["reply_recipient"],)).fetchall()
    for (doc,) in rows:
        # Validated at import (schema.parse_document): age1pq1… when present.
        pq = json.loads(doc).get("reply_recipient_pq")
        if pq is not None:
            return [parse_recipient(pq), desk]
    raise OutboxError(
        "this source's reports carry no post-quantum reply key (they were sent while the "
        "keyring was classic), and this desk's key is post-quantum: a reply can go once "
        "the source sends a follow-up; nothing was queued")


def _consent_override(item: dict[str, Any], reason: str | None) -> str | None:
    """The override to record, or None when the source consented to sharing.

    A source who declined "share within the coalition" did not agree to their report,
    their attachments and their reply key going to another desk. The triager can still
    refer (a source may have asked for it by other means), but only by saying why; the
    reason is kept in the history and shown with the report.
    """
    consent = json.loads(item["doc"])["answers"]["consent"]
    if consent["share_within_coalition"] is True:
        return None
    if reason is None:
        raise OutboxError(
            "the source declined sharing within the coalition: this report is not referred. "
            "If the source has since agreed, or the law requires it, refer with "
            "--override-consent REASON (recorded in the history and shown with the report)")
    reason = reason.strip()
    if not reason or len(reason) > MAX_OVERRIDE_REASON_CHARS or not reason.isprintable():
        raise OutboxError(f"the override's reason must be one line of 1 to "
                          f"{MAX_OVERRIDE_REASON_CHARS} printable characters")
    return reason


def refer(vault: Vault, item_id: str, to_desk: str, note: str, *,
          override_consent: str | None = None) -> str:
    """Re-encrypt a report and its attachments to another desk; return the referral id.

    Refused when the source declined sharing, unless ``override_consent`` gives the
    reason to do it anyway (see :func:`_consent_override`).
    """
    item = _item_report(vault, item_id)
    if to_desk == vault.desk_id:
        raise OutboxError("a report cannot be referred to its own desk")
    desk = vault.keyring().get(to_desk)
    if desk is None:
        known = ", ".join(d.id for d in vault.keyring() if d.id != vault.desk_id) or "none"
        raise OutboxError(f"desk {to_desk!r} is not in the keyring (known: {known})")
    if len(note) > MAX_REPLY_CHARS:
        raise OutboxError(f"a note is at most {MAX_REPLY_CHARS} characters")
    override = _consent_override(item, override_consent)
    recipient = [parse_recipient(desk.recipient)]
    ref_id = secrets.token_hex(16)
    outbox = vault.dir("outbox")
    doc = json.loads(item["doc"])
    doc["referral"] = {"from_desk": vault.desk_id, "day": today(), "note": note}
    names = [f"{ref_id}.json.age"]
    written: list[Path] = []
    try:
        written.append(fs.atomic_write_bytes(
            fs.safe_join(outbox, names[0]),
            encrypt(json.dumps(doc, ensure_ascii=False).encode("utf-8"), recipient)))
        rows = vault.conn.execute(
            "SELECT n, file FROM attachments WHERE item_id = ? ORDER BY n", (item["id"],)
        ).fetchall()
        for n, file in rows:
            name = f"{ref_id}.a{n}.age"
            # Chunk by chunk: a large attachment is never whole in memory or on disk.
            with open(fs.safe_join(vault.dir("files"), file), "rb") as src, \
                    fs.AtomicWriter(fs.safe_join(outbox, name)) as w, \
                    Encryptor(w.file, recipient) as enc:
                for chunk in decrypt_stream(src, [vault.keys.identity], armored=False):
                    enc.write(chunk)
            written.append(w.path)
            names.append(name)
    except AgeError as e:
        for p in written:
            fs.safe_unlink(p.parent, p.name)
        raise OutboxError(f"cannot re-encrypt: {age_failure(e)}; nothing was queued") from None
    except BaseException:
        for p in written:
            fs.safe_unlink(p.parent, p.name)
        raise
    vault.conn.execute(
        "INSERT INTO outbox (id, type, item_id, to_recipient, to_desk, files, note, at, author, "
        "bundle_id) VALUES (?, 'referral', ?, '', ?, ?, ?, ?, ?, '')",
        (ref_id, item["id"], to_desk, json.dumps(names), note, now(), vault.user),
    )
    if override is not None:
        record_consent_override(vault, item["id"], to_desk, override)
    set_fields(vault, item["id"], status="referred")
    vault.changed()
    return ref_id


def list_outbox(vault: Vault, *, include_sent: bool = False) -> list[OutboxEntry]:
    """Replies and referrals waiting for ``outbox bundle`` (with ``include_sent``, all)."""
    sql = "SELECT id, type, item_id, to_recipient, to_desk, files, at, author, bundle_id " \
          "FROM outbox"
    if not include_sent:
        sql += " WHERE bundle_id = ''"
    return [OutboxEntry(id=id_, type=kind, item_id=item_id, to_recipient=to_recipient,
                        to_desk=to_desk, files=tuple(json.loads(files)), at=at, author=author,
                        bundle_id=bundle_id)
            for id_, kind, item_id, to_recipient, to_desk, files, at, author, bundle_id
            in vault.conn.execute(sql + " ORDER BY at")]


def bundle_outbox(vault: Vault, out: str | Path) -> tuple[Path, int]:
    """Write every pending outbox item into one signed bundle; return (path, count)."""
    pending = list_outbox(vault)
    if not pending:
        raise OutboxError("the outbox is empty: nothing to bundle")
    items: list[dict[str, Any]] = []
    files: list[tuple[str, Path]] = []
    for p in pending:
        names = list(p.files)
        if p.type == "reply":
            items.append({"type": "reply", "id": p.id, "to": p.to_recipient,
                          "file": names[0]})
        else:
            items.append({"type": "referral", "id": p.id, "to_desk": p.to_desk,
                          "files": names})
        files += [(n, fs.safe_join(vault.dir("outbox"), n)) for n in names]
    index = json.dumps({"format": "amana-outbox", "version": 1, "desk": vault.desk_id,
                        "items": items}, separators=(",", ":")).encode("ascii")
    try:
        manifest = write_bundle_file(
            out, "outbox", vault.desk_id, [("outbox.json", io.BytesIO(index)), *files],
            vault.keys.signing_key)
    except fs.FileExistsRefused:
        raise OutboxError(f"{out} already exists: choose a new file name") from None
    for p in pending:
        vault.conn.execute("UPDATE outbox SET bundle_id = ? WHERE id = ?",
                           (manifest["id"], p.id))
    vault.changed()
    return Path(out), len(pending)


def read_own_reply(vault: Vault, name: str) -> dict[str, Any]:
    """Decrypt one of this desk's queued replies (used by tests and `show`)."""
    with open(fs.safe_join(vault.dir("outbox"), name), "rb") as f:
        data: dict[str, Any] = json.loads(decrypt(f.read(), [vault.keys.identity]))
    return data
