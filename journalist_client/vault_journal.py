"""The vault's change journal: a triage action made durable in milliseconds.

A vault's database lives in memory and its image (``triage.vault``) is rewritten whole
at every save (journalist_client.vault). With thousands of reports that costs a tenth
of a second and more, too slow for a triager clicking through reports in the local UI
or the shell. A session therefore records, at each save, only the rows that changed
since the last one, as one record appended to ``triage.journal`` beside the image and
fsynced before the action's answer is shown; on close the image is rewritten once and
the journal removed (compaction). ADR 0010 says why this design and not another.

How changes are found: TEMP triggers (they live in the connection, never in the image)
on every ordinary table of the database note ``(table, rowid)`` of each inserted,
updated or deleted row in ``temp.journal_rows``; the full-text index, a virtual table
that cannot carry triggers, is written only through :func:`index_search`, which notes
its rowid the same way. A record holds the final state of each noted row (or its
absence): replaying records in order onto the image gives the database as it was at
the last save.

File format (all integers big-endian)::

    "AMANA-JOURNAL-V1\\n" || base (32 bytes: the SHA-256 that the image's signature covers)
    record*:  length (4) || body (length bytes: age, to the desk) || signature (64)

Each record's signature, by the desk signing key under the context
``amana/vault-journal/v1``, covers the desk id and a hash chain:
``chain_0 = base``, ``chain_i = SHA-256(chain_{i-1} || SHA-256(body_i))``. A record
therefore cannot be altered, reordered, or taken from another vault or another image,
and a journal left from before the image was rewritten (a compaction killed between
its two steps) names another base and is dropped as stale. A record that is cut short
or does not verify ends the journal: it is the last write of a process killed before
it answered, and it and anything after it are discarded (the unlock says so). What this
cannot prevent, as for the image itself: someone with the disk removing the last
records (a rollback), which docs/threat-model.md lists.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from keys import fs
from keys.age import AgeError, Encryptor, decrypt, parse_recipient
from keys.identity import DeskKeys
from keys.signing import CONTEXT_VAULT_JOURNAL, BadSignature

__all__ = [
    "JOURNAL_FILE",
    "Journal",
    "JournalError",
    "Replay",
    "apply",
    "capture",
    "clear",
    "collect",
    "index_search",
    "pending",
    "read",
    "uncapture",
]

JOURNAL_FILE: Final = "triage.journal"
MAGIC: Final = b"AMANA-JOURNAL-V1\n"
SEARCH_TABLE: Final = "search"
# One record holds at most this much ciphertext; a bigger change is a full save.
MAX_RECORD: Final = 64 * 1024 * 1024
_SIG: Final = 64
_LEN: Final = struct.Struct(">I")
_BASE: Final = 32
_PAYLOAD_VERSION: Final = 1
# Table names come from the database's own schema; anything else is refused, never quoted.
_NAME_RE: Final = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_ROWS: Final = "temp.journal_rows"


class JournalError(Exception):
    """The journal cannot be written, or a record that verified cannot be applied."""


# --- change capture -------------------------------------------------------------------

def _tables(conn: sqlite3.Connection) -> list[str]:
    names = []
    for _schema, name, kind, *_ in conn.execute("PRAGMA main.table_list"):
        if kind != "table" or name.startswith("sqlite_"):
            continue
        if not _NAME_RE.fullmatch(name):
            raise JournalError(f"table name {name!r} is not one this client makes")
        names.append(name)
    return sorted(names)


def capture(conn: sqlite3.Connection) -> int:
    """Start noting changed rows; returns the schema version the triggers were made for."""
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_ROWS.split('.')[1]} ("
                 "tbl TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tbl, rid)"
                 ") WITHOUT ROWID")
    uncapture(conn)
    for t in _tables(conn):
        # Inside a trigger a table name cannot be qualified; temp is searched first.
        note = f"INSERT OR IGNORE INTO journal_rows VALUES ('{t}', "
        conn.executescript(f"""
            CREATE TEMP TRIGGER journal_{t}_i AFTER INSERT ON main.{t}
                BEGIN {note}NEW.rowid); END;
            CREATE TEMP TRIGGER journal_{t}_u AFTER UPDATE ON main.{t}
                BEGIN {note}OLD.rowid); {note}NEW.rowid); END;
            CREATE TEMP TRIGGER journal_{t}_d AFTER DELETE ON main.{t}
                BEGIN {note}OLD.rowid); END;
        """)
    return int(conn.execute("PRAGMA main.schema_version").fetchone()[0])


def uncapture(conn: sqlite3.Connection) -> None:
    """Drop the triggers (before a bulk change that will be saved whole)."""
    triggers = [name for (name,) in conn.execute(
        "SELECT name FROM temp.sqlite_master WHERE type = 'trigger' AND name LIKE 'journal_%'")]
    for name in triggers:
        if not _NAME_RE.fullmatch(name):
            raise JournalError(f"trigger name {name!r} is not one this client makes")
        conn.execute(f"DROP TRIGGER temp.{name}")


def _has_rows_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM temp.sqlite_master WHERE name = 'journal_rows'"
                        ).fetchone() is not None


def pending(conn: sqlite3.Connection) -> int:
    """How many changed rows are noted and not yet collected."""
    if not _has_rows_table(conn):
        return 0
    return int(conn.execute(f"SELECT count(*) FROM {_ROWS}").fetchone()[0])


def clear(conn: sqlite3.Connection) -> None:
    """Forget the noted rows (they were saved)."""
    if _has_rows_table(conn):
        conn.execute(f"DELETE FROM {_ROWS}")
        conn.commit()


def index_search(conn: sqlite3.Connection, rowid: int, body: str) -> None:
    """Put ``body`` in the full-text index under ``rowid`` (the one writer of the index)."""
    conn.execute(f"DELETE FROM {SEARCH_TABLE} WHERE rowid = ?", (rowid,))
    conn.execute(f"INSERT INTO {SEARCH_TABLE} (rowid, body) VALUES (?, ?)", (rowid, body))
    if _has_rows_table(conn):
        conn.execute(f"INSERT OR IGNORE INTO {_ROWS} VALUES ('{SEARCH_TABLE}', ?)", (rowid,))


def _encode_value(value: Any) -> Any:
    if isinstance(value, bytes):
        # Lists never appear as column values otherwise; a one-item list is a blob.
        return [value.hex()]
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], str):
            raise JournalError("a journal record holds a malformed value")
        return bytes.fromhex(value[0])
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise JournalError("a journal record holds a malformed value")


def collect(conn: sqlite3.Connection) -> bytes:
    """The noted rows' current state as a record payload (b"" if nothing changed);
    the notes are cleared."""
    noted: dict[str, list[int]] = {}
    for tbl, rid in conn.execute(f"SELECT tbl, rid FROM {_ROWS} ORDER BY tbl, rid"):
        noted.setdefault(tbl, []).append(rid)
    if not noted:
        return b""
    tables: dict[str, dict[str, Any]] = {}
    for tbl, rids in noted.items():
        if not _NAME_RE.fullmatch(tbl):
            raise JournalError(f"table name {tbl!r} is not one this client makes")
        if tbl == SEARCH_TABLE:
            cur = conn.execute(f"SELECT rowid, body FROM {SEARCH_TABLE} WHERE rowid IN "
                               f"(SELECT rid FROM {_ROWS} WHERE tbl = ?)", (tbl,))
        else:
            cur = conn.execute(f"SELECT rowid, * FROM main.{tbl} WHERE rowid IN "
                               f"(SELECT rid FROM {_ROWS} WHERE tbl = ?)", (tbl,))
        cols = [d[0] for d in cur.description][1:]
        put = [[row[0], *map(_encode_value, row[1:])] for row in cur]
        present = {row[0] for row in put}
        tables[tbl] = {"cols": cols, "put": put,
                       "del": [rid for rid in rids if rid not in present]}
    clear(conn)
    return json.dumps({"v": _PAYLOAD_VERSION, "tables": tables},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def apply(conn: sqlite3.Connection, payload: bytes) -> None:
    """Replay one record's payload (already verified and decrypted) onto ``conn``."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise JournalError("a journal record is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != _PAYLOAD_VERSION \
            or not isinstance(doc.get("tables"), dict):
        raise JournalError("a journal record has an unknown format")
    known = set(_tables(conn)) | {SEARCH_TABLE}
    for tbl, change in doc["tables"].items():
        if tbl not in known or not isinstance(change, dict):
            raise JournalError(f"a journal record names an unknown table {tbl!r}")
        cols, put, dele = change.get("cols"), change.get("put"), change.get("del")
        if not (isinstance(cols, list) and isinstance(put, list) and isinstance(dele, list)
                and all(isinstance(c, str) and _NAME_RE.fullmatch(c) for c in cols)):
            raise JournalError(f"a journal record for {tbl!r} is malformed")
        target = SEARCH_TABLE if tbl == SEARCH_TABLE else f"main.{tbl}"
        for rid in dele:
            if not isinstance(rid, int):
                raise JournalError(f"a journal record for {tbl!r} is malformed")
            conn.execute(f"DELETE FROM {target} WHERE rowid = ?", (rid,))
        names = ", ".join(["rowid", *cols])
        marks = ", ".join("?" * (len(cols) + 1))
        for row in put:
            if not isinstance(row, list) or len(row) != len(cols) + 1 \
                    or not isinstance(row[0], int):
                raise JournalError(f"a journal record for {tbl!r} is malformed")
            values = [row[0], *map(_decode_value, row[1:])]
            if tbl == SEARCH_TABLE:
                # An FTS5 table has no REPLACE: remove, then insert.
                conn.execute(f"DELETE FROM {SEARCH_TABLE} WHERE rowid = ?", (row[0],))
                conn.execute(f"INSERT INTO {SEARCH_TABLE} ({names}) VALUES ({marks})", values)
            else:
                conn.execute(f"INSERT OR REPLACE INTO {target} ({names}) VALUES ({marks})",
                             values)


# --- the file -------------------------------------------------------------------------

def _link(chain: bytes, body: bytes) -> bytes:
    return hashlib.sha256(chain + hashlib.sha256(body).digest()).digest()


def _signed(desk_id: str, chain: bytes) -> bytes:
    return b"amana-vault-journal-v1\x00" + desk_id.encode("ascii") + b"\x00" + chain


@dataclass
class Journal:
    """The journal file of one image (``base``), appended to by one unlocked vault."""

    path: Path
    base: bytes
    chain: bytes
    records: int = 0
    size: int = 0
    # An append failed part-way (a full disk, an interrupt): what follows on disk may be
    # a torn record, after which nothing would replay. The next save rewrites the image.
    broken: bool = False

    @classmethod
    def empty(cls, path: Path, base: bytes) -> Journal:
        return cls(path=path, base=base, chain=base)

    def append(self, payload: bytes, keys: DeskKeys) -> None:
        """Encrypt, sign and append one record; durable when this returns."""
        out = io.BytesIO()
        with Encryptor(out, [parse_recipient(keys.desk.recipient)]) as enc:
            enc.write(payload)
        body = out.getvalue()
        if len(body) > MAX_RECORD:
            raise JournalError("the change is too large for one journal record")
        chain = _link(self.chain, body)
        sig = keys.signing_key.sign(_signed(keys.desk.id, chain), context=CONTEXT_VAULT_JOURNAL)
        record = _LEN.pack(len(body)) + body + sig
        first = self.records == 0
        data = MAGIC + self.base + record if first else record
        if first:
            # A journal of an older image, dropped as stale at unlock, could still be here
            # only if its removal failed; this image's journal starts afresh.
            fs.safe_remove(self.path)
        try:
            fs.append_durable(self.path, data, create=first)
        except BaseException:
            self.broken = True
            raise
        self.chain = chain
        self.records += 1
        self.size += len(data)

    def remove(self) -> None:
        fs.safe_remove(self.path)
        self.chain = self.base
        self.records = 0
        self.size = 0


@dataclass(frozen=True)
class Replay:
    """What :func:`read` found: payloads to apply in order, and what it had to leave."""

    payloads: tuple[bytes, ...]
    # The journal was of another image (a compaction killed before its second step).
    stale: bool
    # Bytes after the last good record: a write cut short, or a record that failed.
    discarded: int


def read(path: Path, keys: DeskKeys, base: bytes) -> Replay | None:
    """Read and verify the journal beside an image whose digest is ``base``; None if
    there is none. Never raises for damage: damage ends the journal (see the module)."""
    try:
        data = fs.read_quietly(path)  # an unlock leaves no atime
    except FileNotFoundError:
        return None
    if len(data) < len(MAGIC) + _BASE or not data.startswith(MAGIC):
        return Replay(payloads=(), stale=False, discarded=len(data))
    if data[len(MAGIC):len(MAGIC) + _BASE] != base:
        return Replay(payloads=(), stale=True, discarded=0)
    pos = len(MAGIC) + _BASE
    chain = base
    payloads: list[bytes] = []
    verify = keys.signing_key.verify_key
    while pos < len(data):
        if pos + _LEN.size > len(data):
            break
        (n,) = _LEN.unpack_from(data, pos)
        end = pos + _LEN.size + n + _SIG
        if n > MAX_RECORD or end > len(data):
            break
        body = data[pos + _LEN.size: pos + _LEN.size + n]
        sig = data[end - _SIG:end]
        link = _link(chain, body)
        try:
            verify.verify(_signed(keys.desk.id, link), sig, context=CONTEXT_VAULT_JOURNAL)
            payload = decrypt(body, [keys.identity], armored=False)
        except (BadSignature, AgeError):
            break
        payloads.append(payload)
        chain = link
        pos = end
    return Replay(payloads=tuple(payloads), stale=False, discarded=len(data) - pos)
