"""The desk's vault: its keys, its encrypted triage database, and received ciphertext.

Layout of a vault directory (mode 0700, files 0600)::

    vault.json          {"format": "amana-vault", "version": 1, "desk": "<id>"}: no secret
    keys/               identity.age, signing.age, desk.json (keys.identity; passphrase-encrypted)
      previous/<n>/     identity.age, desk.json of the desk's earlier keys, oldest first
                        (n = 1, 2, …), kept to open what was encrypted to them
    triage.vault        the triage database, see below
    files/              report and attachment ciphertext exactly as received (age, to the desk)
    quarantine/         ciphertext of items that failed to decrypt or validate, kept
    outbox/             replies and referrals, already encrypted, waiting for a bundle
    acks/               ack bundles written by import, for the transfer machine

The triage database is an SQLite database that exists only in memory. ``triage.vault``
holds its image (``sqlite3.Connection.serialize()``) as::

    "AMANA-VAULT-V1\\n" || age file encrypted to the desk's own identity
                       || Ed25519 signature (64 bytes) || "AMANA-VAULT-END\\n"

The signature, by the desk signing key under the context ``amana/vault/v1``, covers the
desk id and the SHA-256 of everything before it. It is needed because age encryption
is not authentication: anyone who knows the desk's *public* recipient could otherwise
write a forged database (with, say, a different trusted server key) into the vault.
The keys themselves are authenticated by the passphrase (an age scrypt stanza cannot
be made without it). A save writes a temporary file beside the vault, fsyncs it, renames
it over ``triage.vault`` and fsyncs the directory (keys.fs.AtomicWriter), so ``kill -9``
at any instant leaves either the previous vault or the new one. SQLite is told to keep
temporary tables and sorts in memory, so no plaintext page ever reaches the disk.

The database's schema version is SQLite's ``PRAGMA user_version``: ``MIGRATIONS[n]``
takes an image from version n to n + 1, run at unlock, so a vault saved by an older
client gains the tables added since; an image newer than this client is refused.

Key rotation (docs/key-rotation.md, ADR 0011): :func:`rotate_keys` takes the desk's new
keys (``intake-keys rotate``, the same passphrase), keeps the old identity under
``keys/previous/<n>/`` and re-signs and re-encrypts the database to the new keys. The new
keys wait in ``keys/.rotating.partial/`` until the new image is in place; an unlock that
finds that directory finishes the swap (if the image is already signed by the new key,
itself authenticated by the passphrase) or drops it (if not). The old signing key is
not kept: the new one acknowledges everything.

What this does not protect against: a thief with the disk can put back an *older*
signed vault (a rollback), and an attacker who has the passphrase has everything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import sqlite_utils

from journalist_client import search, vault_journal
from keys import fs
from keys.age import AgeError, Encryptor, Identity, decrypt, parse_recipient
from keys.identity import (
    DESK_FILE,
    IDENTITY_FILE,
    SIGNING_FILE,
    TRANSITION_FILE,
    DeskError,
    DeskKeys,
    IdentityList,
    WrongPassphrase,
    generate_desk,
    load_desk,
    load_identity,
)
from keys.keyring import Keyring, KeyringError, adopt_keyring
from keys.signing import CONTEXT_VAULT, BadSignature, KeyFormatError, VerifyKey, read_verify_key
from keys.transition import TransitionError, verify_transition

__all__ = [
    "SCRYPT_WORK_FACTOR",
    "Vault",
    "VaultError",
    "WrongVaultPassphrase",
    "create_vault",
    "now",
    "rotate_keys",
    "today",
    "unlock",
]

FORMAT: Final = "amana-vault"
# Which index rules (journalist_client.search.INDEX_RULES) built the search index.
SEARCH_RULES_KEY: Final = "search_rules"
VERSION: Final = 1
MAGIC: Final = b"AMANA-VAULT-V1\n"
END: Final = b"AMANA-VAULT-END\n"
SIGNATURE_CONTEXT: Final = CONTEXT_VAULT
DB_FILE: Final = "triage.vault"
META_FILE: Final = "vault.json"
LOCK_FILE: Final = ".lock"
SUBDIRS: Final = ("keys", "files", "quarantine", "outbox", "acks")
PREVIOUS_DIR: Final = "previous"
_ROTATING: Final = ".rotating.partial"
_KEY_FILES: Final = (IDENTITY_FILE, SIGNING_FILE, DESK_FILE)
#: What `age -p` uses. Tests lower it; nobody else should.
SCRYPT_WORK_FACTOR: int = 18
_SIG: Final = 64
# A session's save goes to the journal unless it changed more rows than this, or the
# journal has grown past this size: then the image is rewritten (ADR 0010).
JOURNAL_MAX_ROWS: Final = 20_000
JOURNAL_MAX_BYTES: Final = 32 * 1024 * 1024
_MAX_META: Final = 4096


class VaultError(Exception):
    """The vault cannot be created, unlocked or saved; the message says what to do."""


class WrongVaultPassphrase(VaultError):
    """The passphrase does not open the vault's keys (worth another try at a terminal)."""


def now() -> str:
    """UTC time to the minute: enough for a history, no finer (the vault may be seized)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def today() -> str:
    """The UTC day as YYYY-MM-DD (keys.fs.today)."""
    return fs.today().isoformat()


_SCHEMA: Final[list[tuple[str, dict[str, Any], str | tuple[str, ...]]]] = [
    ("meta", {"key": str, "value": str}, "key"),
    ("items", {"n": int, "id": str, "type": str, "received_day": str, "language": str,
               "category": str, "country": str, "desks": str, "reply_recipient": str,
               "doc": str, "bundle_id": str, "imported_at": str, "status": str,
               "severity": str, "triage_category": str, "assignee": str}, "n"),
    ("attachments", {"item_id": str, "n": int, "name": str, "media_type": str, "size": int,
                     "sha256": str, "file": str}, ("item_id", "n")),
    ("tags", {"item_id": str, "tag": str}, ("item_id", "tag")),
    ("notes", {"n": int, "item_id": str, "at": str, "author": str, "text": str}, "n"),
    ("history", {"n": int, "item_id": str, "at": str, "who": str, "field": str,
                 "old": str, "new": str}, "n"),
    ("bundles", {"id": str, "kind": str, "created": str, "imported_at": str, "items": int,
                 "quarantined": int, "ack_file": str}, "id"),
    ("quarantine", {"n": int, "bundle_id": str, "item_id": str, "type": str, "files": str,
                    "reason": str, "at": str}, "n"),
    ("replies", {"id": str, "item_id": str, "at": str, "author": str, "body": str}, "id"),
    ("outbox", {"id": str, "type": str, "item_id": str, "to_recipient": str, "to_desk": str,
                "files": str, "note": str, "at": str, "author": str, "bundle_id": str}, "id"),
]


def _add_indicator_tables(conn: sqlite3.Connection) -> None:
    """Version 1: the spyware indicators (issue 15) and what they matched in reports.

    Indicators are stored as rows, one per indicator, so the index is built from the
    vault without parsing a STIX bundle again (journalist_client.indicators). A match
    repeats its indicator's fields: it stays readable when the file is later replaced.
    """
    # ioc_indicators has no index: a million rows go in at twice the speed without one,
    # and the only query by file (replacing or removing a file) is rare. ioc_files keeps
    # each file's counts per family (JSON), so `iocs list` reads no indicator row.
    conn.executescript("""
        CREATE TABLE ioc_files (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL,
            imported_day TEXT NOT NULL, indicators INTEGER NOT NULL,
            unsupported INTEGER NOT NULL, families TEXT NOT NULL);
        CREATE TABLE ioc_indicators (file TEXT NOT NULL, kind TEXT NOT NULL,
            value TEXT NOT NULL, family TEXT NOT NULL, indicator_id TEXT NOT NULL,
            stix_key TEXT NOT NULL, refs TEXT NOT NULL);
        CREATE TABLE ioc_unsupported (file TEXT NOT NULL, indicator_id TEXT NOT NULL,
            pattern TEXT NOT NULL, reason TEXT NOT NULL, family TEXT NOT NULL);
        CREATE INDEX ioc_unsupported_file ON ioc_unsupported (file);
        CREATE TABLE ioc_matches (n INTEGER PRIMARY KEY, item_id TEXT NOT NULL,
            file TEXT NOT NULL, indicator_id TEXT NOT NULL, kind TEXT NOT NULL,
            value TEXT NOT NULL, family TEXT NOT NULL, stix_key TEXT NOT NULL,
            refs TEXT NOT NULL, candidate TEXT NOT NULL, how TEXT NOT NULL,
            field TEXT NOT NULL, attachment TEXT, path TEXT NOT NULL,
            device_output INTEGER NOT NULL);
        CREATE INDEX ioc_matches_item ON ioc_matches (item_id);
        CREATE TABLE ioc_claims (n INTEGER PRIMARY KEY, item_id TEXT NOT NULL,
            module TEXT NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL,
            indicator_value TEXT NOT NULL, indicator_type TEXT NOT NULL,
            family TEXT NOT NULL, stix2_file_name TEXT NOT NULL, mvt_format TEXT NOT NULL,
            field TEXT NOT NULL, attachment TEXT, path TEXT NOT NULL);
        CREATE INDEX ioc_claims_item ON ioc_claims (item_id);
        CREATE TABLE ioc_scans (item_id TEXT PRIMARY KEY, problems TEXT NOT NULL,
            suggestion TEXT NOT NULL, confidence TEXT NOT NULL, reason TEXT NOT NULL,
            decision TEXT NOT NULL);
    """)


def _add_continuity_tables(conn: sqlite3.Connection) -> None:
    """Version 2: what the server's signed statements say this desk should hold, and
    what it deleted before the desk had it (journalist_client.continuity, ADR 0007)."""
    conn.executescript("""
        CREATE TABLE expected (id TEXT PRIMARY KEY, bundle_id TEXT, day TEXT);
        CREATE TABLE losses (id TEXT PRIMARY KEY, received_day TEXT, deleted_day TEXT,
            bundle_id TEXT);
    """)


def _indicators_as_columns(conn: sqlite3.Connection) -> None:
    """Version 3: each indicator file's indicators as columns (a JSON text, and the values
    and ids as lines; journalist_client.iocs.stored) instead of a row per indicator,
    which cost a Python step per row to store and to read back (2.3 and 2.6 s for a
    million). The rows of each file are converted in their order, files in the order
    they were imported."""
    # Imported here: the indicator package loads its matchers, which unlock needs only
    # when this migration runs (once per vault).
    from journalist_client.iocs import Indicator, IndicatorColumns, Kind, stored

    conn.execute("CREATE TABLE ioc_columns (file TEXT PRIMARY KEY, columns TEXT NOT NULL, "
                 "value_lines TEXT, id_lines TEXT)")
    files = [name for (name,) in conn.execute(
        "SELECT file FROM ioc_indicators GROUP BY file ORDER BY min(rowid)")]
    for name in files:
        rows = conn.execute("SELECT kind, value, family, indicator_id, stix_key, refs "
                            "FROM ioc_indicators WHERE file = ? ORDER BY rowid", (name,))
        kept = [Indicator(Kind(kind), value, family, name, indicator_id, stix_key,
                          tuple(json.loads(refs)) if refs else ())
                for kind, value, family, indicator_id, stix_key, refs in rows]
        conn.execute("INSERT INTO ioc_columns (file, columns, value_lines, id_lines) "
                     "VALUES (?, ?, ?, ?)", (name, *stored.encode(IndicatorColumns.of(kept))))
    conn.execute("DROP TABLE ioc_indicators")


# In order: MIGRATIONS[n] takes a vault database from version n to n + 1 (PRAGMA
# user_version). Append; never edit one that has shipped, vaults in the field ran it.
MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (
    _add_indicator_tables,
    _add_continuity_tables,
    _indicators_as_columns,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def _migrate(conn: sqlite3.Connection) -> bool:
    """Bring the database to SCHEMA_VERSION; whether any migration ran."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise VaultError(f"{DB_FILE} has schema version {version}, newer than this "
                         f"journalist-client knows ({SCHEMA_VERSION}): upgrade the client")
    for migration in MIGRATIONS[version:]:
        migration(conn)
    # PRAGMA takes no parameters; SCHEMA_VERSION is an int of ours.
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    conn.commit()
    return version < SCHEMA_VERSION


def _new_database() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    _harden(conn)
    db = sqlite_utils.Database(conn)
    for name, columns, pk in _SCHEMA:
        db.table(name).create(columns, pk=pk)
    db.table("items").create_index(["id"], unique=True)
    db.table("items").create_index(["reply_recipient"])
    db.table("quarantine").create_index(["item_id"])
    # detail=none: no phrase queries, a much smaller index, so smaller and faster saves.
    conn.execute("CREATE VIRTUAL TABLE search USING fts5(body, "
                 "tokenize='unicode61 remove_diacritics 0', detail=none)")
    conn.commit()
    _migrate(conn)
    return conn


def _harden(conn: sqlite3.Connection) -> None:
    # Sorts, temporary indexes and temp tables would otherwise spill plaintext to /tmp.
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA trusted_schema=OFF")


@dataclass
class Vault:
    """An unlocked vault. Changes live in memory until :meth:`save`."""

    path: Path
    keys: DeskKeys
    conn: sqlite3.Connection
    user: str
    _changed: bool = field(default=False, repr=False)
    _saved: bool = field(default=False, repr=False)
    _lock: int = field(default=-1, repr=False)
    # Derived data built once per run (the indicator index), dropped when its source
    # rows change. Never saved.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    # The journal of the image on disk (ADR 0010); None until the vault is first saved.
    _journal: vault_journal.Journal | None = field(default=None, repr=False)
    # PRAGMA schema_version the change capture was made for; None outside a session.
    _capture_schema: int | None = field(default=None, repr=False)
    _full_needed: bool = field(default=False, repr=False)
    # sqlite3's total_changes at the last full save or the start of bulk().
    _changes_mark: int = field(default=0, repr=False)
    # Said once to the person who unlocked: the last session ended without closing.
    notice: str | None = field(default=None, repr=False)

    @property
    def db(self) -> sqlite_utils.Database:
        return sqlite_utils.Database(self.conn)

    @property
    def desk_id(self) -> str:
        return self.keys.desk.id

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        self.changed()

    def keyring(self) -> Keyring:
        text = self.meta("keyring")
        if text is None:
            raise VaultError("the vault holds no keyring")
        return Keyring.from_json(text.encode("utf-8"))

    def adopt_keyring(self, offered: Keyring) -> tuple[str, ...]:
        """Take the key rotations in ``offered`` (a keyring from a server-signed bundle)
        that descend from this vault's keyring (keys.keyring.adopt_keyring); what to say."""
        adoption = adopt_keyring(self.keyring(), offered)
        notes = list(adoption.notes)
        if adoption.changed:
            self.set_meta("keyring", adoption.keyring.to_json().decode("utf-8"))
            self.conn.execute("INSERT INTO history (item_id, at, who, field, old, new) "
                              "VALUES ('', ?, ?, 'keyring', '', ?)",
                              (now(), self.user, "; ".join(adoption.notes)))
        own = adoption.keyring.get(self.desk_id)
        if own is not None and own.verify_key != self.keys.desk.verify_key:
            notes.append(f"this desk ({self.desk_id}) has new keys on the server: bring them "
                         "here with `journalist-client rotate-keys --import-keys DIR`")
        return tuple(notes)

    def server_key(self) -> VerifyKey:
        text = self.meta("server_key")
        if text is None:
            raise VaultError(
                "no server key is trusted yet: run `journalist-client trust-server KEY` with the "
                "server-verify.key (or the key, ed25519:…), checked against the coalition's copy"
            )
        return VerifyKey.from_text(text)

    def trust_server(self, key_text: str) -> VerifyKey:
        """Trust ``key_text`` as the server's export key; recorded in history. It is the
        key (ed25519:…), the content of server-verify.key, or that file's path."""
        try:
            key = read_verify_key(key_text)
        except KeyFormatError as e:
            raise VaultError(f"server key: {e}") from None
        old = self.meta("server_key")
        self.set_meta("server_key", str(key))
        self.conn.execute("INSERT INTO history (item_id, at, who, field, old, new) "
                          "VALUES ('', ?, ?, 'server_key', ?, ?)",
                          (now(), self.user, old or "", str(key)))
        return key

    def dir(self, name: str) -> Path:
        if name not in SUBDIRS:
            raise ValueError(name)
        return self.path / name

    def changed(self) -> None:
        self._changed = True

    @property
    def is_changed(self) -> bool:
        return self._changed

    def save(self) -> None:
        """Make every change so far durable (see the module docstring and ADR 0010).

        Outside a session the image is rewritten whole. In a session
        (:meth:`start_journal`) the rows changed since the last save are appended to
        the journal instead, which costs milliseconds whatever the vault's size; the
        image is rewritten when a change is too large for the journal, after a
        :meth:`bulk` change, when the schema changed, and at :meth:`close`.
        """
        self.conn.commit()
        self.set_meta("saved_at", now())
        self.conn.commit()
        if self._capture_schema is None or self._full_needed or self._journal_too_big():
            self._write_full()
        else:
            payload = vault_journal.collect(self.conn)
            if payload:
                assert self._journal is not None  # noqa: S101 - set by unlock or a full save
                self._journal.append(payload, self.keys)
        self._changed = False
        self._saved = True

    def _journal_too_big(self) -> bool:
        if vault_journal.pending(self.conn) > JOURNAL_MAX_ROWS:
            return True
        if self._journal is None or self._journal.broken \
                or self._journal.size > JOURNAL_MAX_BYTES:
            return True
        schema = int(self.conn.execute("PRAGMA main.schema_version").fetchone()[0])
        return schema != self._capture_schema

    def _write_full(self) -> None:
        image = self.conn.serialize()
        digest = _write_image(self.path / DB_FILE, image, self.keys)
        del image
        # The old journal belongs to the old image: removed after the new image is in
        # place, so a crash between the two leaves a journal the next unlock finds stale.
        if self._journal is not None:
            self._journal.remove()
        self._journal = vault_journal.Journal.empty(self.path / vault_journal.JOURNAL_FILE,
                                                   digest)
        vault_journal.clear(self.conn)
        self._full_needed = False
        self._changes_mark = self.conn.total_changes
        if self._capture_schema is not None:
            self._capture_schema = vault_journal.capture(self.conn)

    def start_journal(self) -> None:
        """Begin a session: from now on a save appends to the journal (ADR 0010)."""
        if self._capture_schema is not None:
            return
        self.conn.commit()
        self._capture_schema = vault_journal.capture(self.conn)

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """A large change (an import, a rescan): no row-by-row notes; saved whole."""
        if self._capture_schema is None:
            yield
            return
        self.conn.commit()
        vault_journal.uncapture(self.conn)
        self._full_needed = True
        self._changes_mark = self.conn.total_changes
        try:
            yield
        finally:
            # Still needed only if rows changed since the start or since a save inside
            # (a read-only command run this way leaves nothing to save).
            self._full_needed = self.conn.total_changes != self._changes_mark
            self._capture_schema = vault_journal.capture(self.conn)

    @property
    def has_unsaved_changes(self) -> bool:
        """Whether the database differs from what was last saved (sessions only)."""
        return self.conn.in_transaction or self._full_needed \
            or vault_journal.pending(self.conn) > 0

    def discard_unsaved(self) -> None:
        """Go back to the last saved state: after a command failed half-way in a session.

        The image and journal are read again with the keys already unlocked (no
        passphrase, no scrypt).
        """
        if not self.has_unsaved_changes:
            return
        self.conn.rollback()
        conn, digest, journal, _ = _open_database(self.path, self.keys)
        self.conn.close()
        self.conn = conn
        self._journal = journal
        self._full_needed = False
        self.cache.clear()
        if journal.records or journal.base != digest:
            self._write_full()
        self._capture_schema = vault_journal.capture(self.conn)

    def close(self) -> None:
        """Release the vault; if it was saved, date everything in it to today first.

        A session's journal is compacted into the image first, unless the database
        holds changes that were never saved (a command failed half-way): those must
        not become durable, so the journal stays and the next unlock compacts it.

        Every save comes with files written (ciphertext in files/ or quarantine/, acks,
        outbox items) whose times would otherwise say to the nanosecond when the desk
        worked; the whole directory is dated to the day instead (keys.fs.set_day_tree),
        before the lock is released.
        """
        try:
            if self._journal is not None and self._journal.records \
                    and not self.has_unsaved_changes:
                self._write_full()
        finally:
            self.conn.close()
            if self._saved:
                fs.set_day_tree(self.path, fs.today())
                self._saved = False
            if self._lock >= 0:
                os.close(self._lock)  # releases the flock
                self._lock = -1


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hash = hashlib.sha256()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.hash.update(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()


def _signed_message(desk_id: str, digest: bytes) -> bytes:
    return b"amana-vault-v1\x00" + desk_id.encode("ascii") + b"\x00" + digest


def _write_image(path: Path, image: bytes, keys: DeskKeys) -> bytes:
    """Write the signed, encrypted image; the digest its signature covers (the base
    of the journal that follows it)."""
    with fs.AtomicWriter(path, overwrite=True) as w:
        hw = _HashingWriter(w.file)
        hw.write(MAGIC)
        # load_desk checked that this recipient is the identity's own.
        with Encryptor(hw, [parse_recipient(keys.desk.recipient)]) as enc:
            view = memoryview(image)
            step = 1024 * 1024
            for i in range(0, len(view), step):
                enc.write(view[i:i + step])
        digest = hw.hash.digest()
        sig = keys.signing_key.sign(_signed_message(keys.desk.id, digest),
                                    context=SIGNATURE_CONTEXT)
        w.write(sig)
        w.write(END)
    return digest


def _read_image(path: Path, keys: DeskKeys) -> tuple[bytes, bytes]:
    """The image's plaintext and the digest its signature covers."""
    try:
        data = fs.read_quietly(path)
    except FileNotFoundError:
        raise VaultError(f"{path} is missing: this is not a vault, or it was damaged") from None
    except fs.FsError as e:
        raise VaultError(f"{path.name} cannot be read: {e}") from None
    if len(data) < len(MAGIC) + _SIG + len(END) or not data.startswith(MAGIC):
        raise VaultError(f"{path.name} is not a vault database (bad header or truncated)")
    if not data.endswith(END):
        raise VaultError(f"{path.name} is truncated or has data after its end")
    body = memoryview(data)[: len(data) - _SIG - len(END)]
    sig = data[len(data) - _SIG - len(END): len(data) - len(END)]
    digest = hashlib.sha256(body).digest()
    try:
        keys.signing_key.verify_key.verify(_signed_message(keys.desk.id, digest), sig,
                                           context=SIGNATURE_CONTEXT)
    except BadSignature:
        raise VaultError(
            f"{path.name} is not signed by this desk's key: it was altered or replaced. "
            "Do not use this machine's vault; restore a backup and tell the coalition."
        ) from None
    try:
        return decrypt(bytes(body[len(MAGIC):]), [keys.identity], armored=False), digest
    except AgeError as e:
        raise VaultError(f"{path.name} cannot be decrypted: {e}") from None


def _take_lock(root: Path) -> int:
    # Two commands working on one vault at once would each save their own copy and the
    # later save would silently drop the other's changes; one at a time.
    fd = fs.lock_exclusive(root / LOCK_FILE)
    if fd is None:
        raise VaultError("another journalist-client is using this vault; wait for it to "
                         "finish (or close the other window) and try again")
    return fd


def _load_keys(keys_dir: Path, passphrase: str, *, what: str) -> DeskKeys:
    """The desk's keys; its identity tries the current key, then every previous one."""
    try:
        keys = load_desk(keys_dir, passphrase)
        previous: list[Identity] = [
            load_identity(d, passphrase) for d in _previous_dirs(keys_dir)]
    except WrongPassphrase:
        # The key file's name means nothing to a triager; say what did not open.
        raise WrongVaultPassphrase(f"wrong passphrase for {what}") from None
    except DeskError as e:
        raise VaultError(str(e)) from None
    if not previous:
        return keys
    return DeskKeys(desk=keys.desk, identity=IdentityList([keys.identity, *previous]),
                    signing_key=keys.signing_key)


def _previous_dirs(keys_dir: Path) -> list[Path]:
    """keys/previous/1, 2, … in order (newest last)."""
    root = keys_dir / PREVIOUS_DIR
    if not root.is_dir():
        return []
    numbers = sorted(int(name) for name in fs.list_dir_names(root)
                     if name.isdigit() and len(name) <= 4)
    return [root / str(n) for n in numbers]


def rotate_keys(vault: Vault, new_dir: str | os.PathLike[str], passphrase: str) -> Path:
    """Move ``vault`` to the desk's new keys in ``new_dir`` (from ``intake-keys rotate``,
    encrypted to the vault's passphrase, with its transition.txt); return where the old
    identity is kept. The old identity keeps opening what was encrypted to it."""
    src = Path(new_dir)
    try:
        new = load_desk(src, passphrase)
    except WrongPassphrase:
        raise VaultError(f"the keys in {src} do not open with this vault's passphrase: "
                         "make them with `intake-keys rotate` and the same passphrase") from None
    except DeskError as e:
        raise VaultError(str(e)) from None
    old = vault.keys.desk
    if new.desk.id != old.id:
        raise VaultError(f"the keys in {src} are desk {new.desk.id!r}'s, not {old.id!r}'s")
    if new.desk.same_keys(old):
        raise VaultError(f"the keys in {src} are this vault's current keys already")
    try:
        statement = fs.read_nofollow(src / TRANSITION_FILE, 64 * 1024).decode("ascii")
        t = verify_transition(statement, old_verify_key=old.verify_key, desk=old.id)
    except FileNotFoundError:
        raise VaultError(f"{src / TRANSITION_FILE} is missing: the new keys must come "
                         "from `intake-keys rotate` with this vault's keys") from None
    except (TransitionError, UnicodeDecodeError, fs.FsError) as e:
        raise VaultError(f"{src / TRANSITION_FILE}: {e}") from None
    if (t.old_recipient, t.new_recipient, t.new_verify_key) != (
            old.recipient, new.desk.recipient, new.desk.verify_key):
        raise VaultError(f"{src / TRANSITION_FILE} is about other keys than these")

    keys_dir = vault.path / "keys"
    # 1. The old identity (never the old signing key) under previous/<n>/.
    # A run that a crash cut short may have kept it already.
    done = _previous_dirs(keys_dir)
    if done and fs.read_nofollow(done[-1] / DESK_FILE, 64 * 1024) == fs.read_nofollow(
            keys_dir / DESK_FILE, 64 * 1024):
        kept = done[-1]
    else:
        kept = keys_dir / PREVIOUS_DIR / str(int(done[-1].name) + 1 if done else 1)
        fs.safe_mkdir(kept, parents=True)
        for name in (IDENTITY_FILE, DESK_FILE):
            fs.atomic_write_bytes(kept / name, fs.read_nofollow(keys_dir / name, 64 * 1024))
    # 2. The new keys, waiting beside the current ones.
    staging = keys_dir / _ROTATING
    fs.remove_staging_dir(staging)
    fs.safe_mkdir(staging)
    for name in _KEY_FILES:
        fs.atomic_write_bytes(staging / name, fs.read_nofollow(src / name, 64 * 1024))
    # 3. The database, signed by and encrypted to the new keys: from here on, an unlock
    # finishes the rotation.
    identities = (vault.keys.identity.identities if isinstance(vault.keys.identity, IdentityList)
                  else (vault.keys.identity,))
    vault.keys = DeskKeys(desk=new.desk, identity=IdentityList([new.identity, *identities]),
                          signing_key=new.signing_key)
    keyring = vault.keyring()
    listed = keyring.get(old.id)
    if listed is not None and listed.same_keys(old):
        keyring = keyring.replacing(listed.replaced_by(new.desk, day=today(), transition=t))
        vault.set_meta("keyring", keyring.to_json().decode("utf-8"))
    vault.conn.execute("INSERT INTO history (item_id, at, who, field, old, new) "
                       "VALUES ('', ?, ?, 'desk_keys', ?, ?)",
                       (now(), vault.user, old.fingerprint, new.desk.fingerprint))
    vault.conn.commit()
    vault._write_full()
    vault._saved = True
    # 4. The new keys in place.
    _finish_rotation(keys_dir)
    return kept


def _finish_rotation(keys_dir: Path) -> None:
    staging = keys_dir / _ROTATING
    for name in _KEY_FILES:
        fs.atomic_write_bytes(keys_dir / name, fs.read_nofollow(staging / name, 64 * 1024),
                              overwrite=True)
    fs.remove_staging_dir(staging)
    fs.fsync_dir(keys_dir)


def _recover_rotation(root: Path, passphrase: str) -> None:
    """Finish or drop a rotation a crash interrupted (see the module docstring)."""
    keys_dir = root / "keys"
    staging = keys_dir / _ROTATING
    if not staging.is_dir():
        return
    try:
        new = load_desk(staging, passphrase)
        _read_image(root / DB_FILE, new)
    except (DeskError, VaultError):
        # Not reached the new image (or the new keys are incomplete): the old keys are
        # still the vault's; the rotation can simply be run again.
        fs.remove_staging_dir(staging)
        return
    _finish_rotation(keys_dir)


def _read_meta_file(path: Path) -> dict[str, Any]:
    try:
        # Quietly: every unlock would otherwise leave its moment in the atimes.
        raw = fs.read_quietly(path / META_FILE, _MAX_META)
    except FileNotFoundError:
        raise VaultError(f"{path} is not a vault (no {META_FILE}); run `init` first") from None
    except (fs.FsError, OSError):
        raise VaultError(f"{path / META_FILE} is damaged") from None
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise VaultError(f"{path / META_FILE} is damaged") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise VaultError(f"{path / META_FILE} is not an {FORMAT} version {VERSION}")
    return meta


def create_vault(
    path: str | os.PathLike[str],
    passphrase: str,
    *,
    desk_id: str | None = None,
    names: Mapping[str, str] | None = None,
    import_keys: str | os.PathLike[str] | None = None,
    keyring_path: str | os.PathLike[str] | None = None,
    server_key: str | None = None,
    user: str | None = None,
) -> Vault:
    """Create a new vault, generating the desk's keys or importing them; return it unlocked."""
    root = Path(path)
    if (desk_id is None) == (import_keys is None):
        raise VaultError("give either --desk ID (new keys) or --import-keys DIR, not both")
    if root.exists() and any(root.iterdir()):
        raise VaultError(f"{root} exists and is not empty: refusing to create a vault there")
    keyring: Keyring | None = None
    if keyring_path is not None:
        try:
            keyring = Keyring.load(keyring_path)
        except (OSError, KeyringError) as e:
            raise VaultError(f"keyring {keyring_path}: {e}") from None
    server_vk: VerifyKey | None = None
    if server_key is not None:
        try:
            server_vk = read_verify_key(server_key)
        except KeyFormatError as e:
            raise VaultError(f"server key: {e}") from None
    if import_keys is not None:
        # Check the keys open with this passphrase before copying anything.
        _load_keys(Path(import_keys), passphrase, what=f"the desk keys in {import_keys}")

    # Built whole in a hidden staging directory beside the vault and renamed into place
    # at the end: a failure (a short passphrase, a keyring conflict, a full disk) leaves
    # no half-made vault, and no copy of the keys, behind.
    if root.exists() and not root.is_dir():
        raise VaultError(f"{root} exists and is not a directory")
    try:
        staging = fs.private_staging_dir(root)
    except (fs.FsError, OSError) as e:
        raise VaultError(f"cannot create the vault beside {root}: {e}") from None
    try:
        vault = _build_vault(staging, passphrase, desk_id=desk_id, names=names,
                             import_keys=import_keys, keyring=keyring, server_vk=server_vk,
                             user=user)
        fs.move_tree_into_place(staging, root)
    except BaseException:
        fs.remove_staging_dir(staging)
        raise
    vault.path = root
    return vault


def _build_vault(
    root: Path,
    passphrase: str,
    *,
    desk_id: str | None,
    names: Mapping[str, str] | None,
    import_keys: str | os.PathLike[str] | None,
    keyring: Keyring | None,
    server_vk: VerifyKey | None,
    user: str | None,
) -> Vault:
    try:
        for sub in SUBDIRS:
            fs.safe_mkdir(root / sub, exist_ok=True)
        if import_keys is not None:
            for name in ("identity.age", "signing.age", "desk.json"):
                with open(Path(import_keys) / name, "rb") as f:
                    fs.atomic_write_bytes(root / "keys" / name, f.read(64 * 1024))
        else:
            assert desk_id is not None  # noqa: S101 - checked above
            generate_desk(desk_id, names or {"en": desk_id, "ar": desk_id, "fr": desk_id},
                          root / "keys", passphrase, work_factor=SCRYPT_WORK_FACTOR)
    except (DeskError, fs.FsError, NotADirectoryError, OSError) as e:
        raise VaultError(str(e)) from None
    keys = _load_keys(root / "keys", passphrase, what="this vault")

    desk = keys.desk
    if keyring is None:
        keyring = Keyring([desk])
    else:
        listed = keyring.get(desk.id)
        if listed is None:
            try:
                keyring = keyring.with_desk(desk)
            except KeyringError as e:
                raise VaultError(f"keyring: {e}") from None
        elif not listed.same_keys(desk):
            raise VaultError(f"the keyring lists desk {desk.id!r} with other keys than these")

    conn = _new_database()
    vault = Vault(path=root, keys=keys, conn=conn, user=user or desk.id)
    vault.set_meta("format", FORMAT)
    vault.set_meta("desk", desk.id)
    vault.set_meta("created", today())
    vault.set_meta("keyring", keyring.to_json().decode("utf-8"))
    vault.set_meta("user", vault.user)
    # The search index is empty and will be built under today's rules.
    vault.set_meta(SEARCH_RULES_KEY, search.INDEX_RULES)
    if server_vk is not None:
        vault.set_meta("server_key", str(server_vk))
    vault.save()
    fs.atomic_write_bytes(root / META_FILE, json.dumps(
        {"format": FORMAT, "version": VERSION, "desk": desk.id}).encode("ascii") + b"\n")
    # vault.json was written after the save: dated now, for a caller that never closes.
    fs.set_day_tree(root, fs.today())
    return vault


def unlock(path: str | os.PathLike[str], passphrase: str, *, user: str | None = None) -> Vault:
    """Open a vault: unlock the keys with the passphrase, verify and decrypt the database."""
    root = Path(path)
    meta = _read_meta_file(root)
    lock = _take_lock(root)
    try:
        return _unlock(root, meta, passphrase, user, lock)
    except BaseException:
        os.close(lock)
        raise


def _unlock(root: Path, meta: dict[str, Any], passphrase: str, user: str | None,
            lock: int) -> Vault:
    _recover_rotation(root, passphrase)
    keys = _load_keys(root / "keys", passphrase, what="this vault")
    if keys.desk.id != meta.get("desk"):
        raise VaultError(f"{META_FILE} names desk {meta.get('desk')!r} but the keys are "
                         f"{keys.desk.id!r}")
    conn, digest, journal, replay = _open_database(root, keys)
    # A vault saved by an older client gains the tables added since (in memory; the
    # next save writes them).
    migrated = _migrate(conn)
    vault = Vault(path=root, keys=keys, conn=conn, user="", _lock=lock, _journal=journal)
    if vault.meta("desk") != keys.desk.id:
        raise VaultError(f"{DB_FILE} belongs to another desk")
    vault.user = user or vault.meta("user") or keys.desk.id
    # A session's first save must not journal onto an image of an older schema.
    vault._full_needed = migrated
    if replay is not None:
        # Compact at once: the next session starts from an image and an empty journal
        # (a stale or damaged journal is removed by the same step).
        vault._write_full()
        vault._saved = True
        vault.notice = _recovery_notice(replay)
    return vault


def _open_database(root: Path, keys: DeskKeys) -> tuple[
        sqlite3.Connection, bytes, vault_journal.Journal, vault_journal.Replay | None]:
    """The database as last saved: the image, verified and decrypted, with its journal
    replayed; also the image's digest, its journal, and what the replay found (None
    if there was no journal)."""
    image, digest = _read_image(root / DB_FILE, keys)
    # A save killed midway leaves its hidden temporary file (ciphertext, never read);
    # so does an import, an ack or a reply killed while it wrote a file (keys.fs
    # AtomicWriter). Only the holder of the lock writes in the vault: removed here.
    for name in fs.list_names(root):
        if name.startswith(f".{DB_FILE}.") and name.endswith(".partial"):
            fs.safe_remove(root / name)
    for sub in ("files", "quarantine", "outbox", "acks"):
        for name in fs.list_names(root / sub):
            if name.startswith(".") and name.endswith(".partial"):
                fs.safe_remove(root / sub / name)
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(image)
    except sqlite3.Error as e:
        conn.close()
        raise VaultError(f"{DB_FILE}: the database image is damaged: {e}") from None
    del image
    _harden(conn)
    path = root / vault_journal.JOURNAL_FILE
    replay = vault_journal.read(path, keys, digest)
    journal = vault_journal.Journal.empty(path, digest)
    if replay is None:
        return conn, digest, journal, None
    try:
        for payload in replay.payloads:
            vault_journal.apply(conn, payload)
        conn.commit()
    except (vault_journal.JournalError, sqlite3.Error) as e:
        conn.close()
        # Signed by this desk and still not applicable: a bug, not an accident. Keep
        # the files as they are for whoever investigates.
        raise VaultError(f"{vault_journal.JOURNAL_FILE} cannot be replayed onto "
                         f"{DB_FILE}: {e}. Nothing was changed; keep a copy of the "
                         "vault and report this.") from None
    journal.records = len(replay.payloads)
    return conn, digest, journal, replay


def _recovery_notice(replay: vault_journal.Replay) -> str | None:
    if replay.stale:
        return None  # a compaction interrupted after its image was in place: nothing lost
    parts = []
    if replay.payloads:
        parts.append(f"the last session was not closed; {len(replay.payloads)} saved "
                     "change(s) were recovered from its journal")
    if replay.discarded:
        parts.append("an unfinished last change (never confirmed as saved) was discarded")
    return "; ".join(parts) + "." if parts else None
