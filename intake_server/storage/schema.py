"""The server's database: every table (the source side's and the staff side's), how a
database reaches the current shape, and the one transaction helper every writer uses.

The schema's version is SQLite's ``PRAGMA user_version``. ``MIGRATIONS[n]`` takes a
database from version n to n + 1; ``open_database()`` applies the ones it lacks, all
in one transaction with the new version number, so a crash leaves the database at the
version it had. A database from a newer intake-server (a version this code does not
know) is refused before anything is written to it: an older server must not guess at
tables it has never seen, nor stamp its own version over them. Version 0 is every
database made before versioning (0.1.0 and earlier). To change the schema, append a
migration; never edit one that has shipped, since databases in the field have run it.

Tables of the source side (``Storage``, the source routes):

- ``submissions``: one row per report or follow-up (random id, UTC day, source id,
  reply recipient, ``type``); ``submission_desks``: the desks each is for;
  ``files``: its age files in ``store/`` (random id, kind, ciphertext size).
- ``sources``: a source outlives its submissions (they go once every desk has
  acknowledged them): the source id (an Argon2id hash of the codename), its reply
  recipient and the UTC day it was last seen, so that it can log in, read replies and
  send follow-ups to the same desks (``source_desks``) afterwards. Retention deletes a
  source idle for longer than the retention period, with its replies.

Tables of the staff side (``StaffStore``, intake_server/staff/store.py):

- ``export_seq``: a monotonic sequence number per submission (SQLite AUTOINCREMENT
  never reuses a number, unlike rowid), so a desk's cursor can never skip a later
  submission.
- ``acks``: which desk has imported which submission. A submission's ciphertext is
  deleted once every desk it was addressed to has acknowledged it.
- ``transfer_keys``: the transfer credentials (Ed25519 verify keys) allowed to fetch a
  desk's ciphertext. They can read ciphertext; they can neither ack nor reply.
- ``replies``: age files for sources, by the source's reply recipient, in ``replies/``.
- ``unacknowledged_deletions``: submissions deleted before a desk they were addressed
  to acknowledged them (desk, id, the day received, the day deleted), kept for one
  retention period so that the desk's next exports say so; nothing else of them.
- ``applied_bundles``: outbox bundles already applied, by manifest id. The request
  nonce stops a replayed request; this stops a replayed bundle (a stolen transfer
  machine re-posting an old signed outbox to bring back a reply the source deleted, or
  to fill the disk).

Since version 3 every table but ``export_seq`` is keyed by its random ids WITHOUT
ROWID: a rowid would keep the order in which rows were inserted, the order of arrival
within a day. A submission's files keep their order in ``files.position``, a source's
replies in ``replies.position``.

What is stored in plaintext: random ids, the desks a submission is for, the
ciphertext sizes, the UTC day, whether it is a first report or a follow-up, the source
id and the source's reply recipient, transfer verify keys. Only UTC days, never a time
of day. Nothing else.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from keys import fs

from .errors import SchemaError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "immediate_transaction", "nested_transaction",
           "open_database", "schema_version"]


@contextlib.contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back if anything fails, the COMMIT included.

    When COMMIT itself fails (SQLITE_FULL, SQLITE_IOERR) SQLite may or may not have
    rolled back already; without the ROLLBACK the connection, shared by the whole
    server, would stay inside the transaction and every later BEGIN would fail.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # "no transaction is active"
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def nested_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """:func:`immediate_transaction`, or, inside a transaction already open on ``conn``
    (an outbox bundle applied whole, intake_server.staff.bundles), a savepoint: undone
    if the block fails, made durable only by the enclosing transaction's COMMIT."""
    if not conn.in_transaction:
        with immediate_transaction(conn):
            yield conn
        return
    conn.execute("SAVEPOINT nested")
    try:
        yield conn
        conn.execute("RELEASE nested")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK TO nested")
            conn.execute("RELEASE nested")
        raise


# -- version 1: the schema as shipped in 0.1.0 ---------------------------------------

# IF NOT EXISTS: a database from before versioning holds some or all of these already.
# The column types and keys are those 0.1.0 made (two tables through sqlite-utils).
_V1_TABLES = (
    "CREATE TABLE IF NOT EXISTS submissions (id TEXT PRIMARY KEY, day TEXT,"
    " source_id TEXT, reply_recipient TEXT,"
    " type TEXT NOT NULL DEFAULT 'report' CHECK (type IN ('report', 'followup')))",
    "CREATE TABLE IF NOT EXISTS submission_desks ("
    " submission_id TEXT REFERENCES submissions (id), desk_id TEXT,"
    " PRIMARY KEY (submission_id, desk_id))",
    "CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY,"
    " submission_id TEXT REFERENCES submissions (id), kind TEXT, ciphertext_size INTEGER)",
    "CREATE INDEX IF NOT EXISTS idx_files_submission_id ON files (submission_id)",
    "CREATE TABLE IF NOT EXISTS sources (source_id TEXT PRIMARY KEY,"
    " reply_recipient TEXT NOT NULL, last_seen_day TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS source_desks (source_id TEXT NOT NULL"
    " REFERENCES sources (source_id) ON DELETE CASCADE,"
    " desk_id TEXT NOT NULL, PRIMARY KEY (source_id, desk_id))",
    "CREATE TABLE IF NOT EXISTS export_seq (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " submission_id TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS acks (submission_id TEXT NOT NULL, desk_id TEXT NOT NULL,"
    " PRIMARY KEY (submission_id, desk_id))",
    "CREATE TABLE IF NOT EXISTS transfer_keys (desk_id TEXT NOT NULL,"
    " verify_key TEXT NOT NULL, PRIMARY KEY (desk_id, verify_key))",
    "CREATE TABLE IF NOT EXISTS replies (id TEXT PRIMARY KEY,"
    " reply_recipient TEXT NOT NULL, desk_id TEXT NOT NULL, day TEXT NOT NULL,"
    " ciphertext_size INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS replies_by_recipient ON replies (reply_recipient)",
    "CREATE TABLE IF NOT EXISTS applied_bundles (id TEXT PRIMARY KEY)",
)


def _to_v1(conn: sqlite3.Connection) -> None:
    """Version 1, the schema of 0.1.0, which kept no version number: create what is
    missing, and bring older shapes forward as 0.1.0's checks at start-up did."""
    before = _tables(conn)
    for ddl in _V1_TABLES:
        conn.execute(ddl)
    if "submissions" in before and "type" not in _columns(conn, "submissions"):
        # From before follow-ups existed: everything in it is a report.
        conn.execute("ALTER TABLE submissions ADD COLUMN type TEXT NOT NULL"
                     " DEFAULT 'report' CHECK (type IN ('report', 'followup'))")
    if "sources" not in before:
        # The sources of a database from before sources had a table of their own.
        conn.execute("INSERT OR IGNORE INTO sources (source_id, reply_recipient, last_seen_day)"
                     " SELECT source_id, reply_recipient, MAX(day) FROM submissions"
                     " GROUP BY source_id")
    if "source_desks" not in before:
        conn.execute("INSERT OR IGNORE INTO source_desks (source_id, desk_id)"
                     " SELECT s.source_id, d.desk_id FROM submissions s"
                     " JOIN submission_desks d ON d.submission_id = s.id")


# -- version 2: what retention deleted before a desk acknowledged it ---------------------

def _to_v2(conn: sqlite3.Connection) -> None:
    """``unacknowledged_deletions``: a submission deleted (by retention, or by the
    operator) while a desk it was addressed to had not acknowledged it, so that the
    desk's next export says so (docs/adr/0007-export-continuity.md). Keyed by desk and
    random id, without a rowid: no order of arrival is kept."""
    conn.execute(
        "CREATE TABLE unacknowledged_deletions (desk_id TEXT NOT NULL,"
        " submission_id TEXT NOT NULL, received_day TEXT NOT NULL,"
        " deleted_day TEXT NOT NULL, PRIMARY KEY (desk_id, submission_id)) WITHOUT ROWID")


# -- version 3: no rowid, so no arrival order -----------------------------------------

# A rowid table numbers its rows in insertion order, and that number stays in the file:
# a seized database would give the order in which reports arrived within a day (and
# which ones came from one source, in turn). Keyed by their random ids WITHOUT ROWID,
# the rows are stored in id order, which says nothing. export_seq keeps its number:
# it is the desks' cursor, handed out at fetch time (see StaffStore.pending).
# ``files.position`` keeps a submission's files in their order (the report first,
# then the attachments as the source gave them), and ``replies.position`` a source's
# replies in theirs (one source's conversation, not an order across sources): the
# rowid used to give both.
_V3_TABLES = {
    "submissions": "CREATE TABLE submissions (id TEXT NOT NULL PRIMARY KEY, day TEXT,"
    " source_id TEXT, reply_recipient TEXT,"
    " type TEXT NOT NULL DEFAULT 'report' CHECK (type IN ('report', 'followup')))"
    " WITHOUT ROWID",
    "submission_desks": "CREATE TABLE submission_desks ("
    " submission_id TEXT NOT NULL REFERENCES submissions (id), desk_id TEXT NOT NULL,"
    " PRIMARY KEY (submission_id, desk_id)) WITHOUT ROWID",
    "files": "CREATE TABLE files (id TEXT NOT NULL PRIMARY KEY,"
    " submission_id TEXT REFERENCES submissions (id), kind TEXT, ciphertext_size INTEGER,"
    " position INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "sources": "CREATE TABLE sources (source_id TEXT NOT NULL PRIMARY KEY,"
    " reply_recipient TEXT NOT NULL, last_seen_day TEXT NOT NULL) WITHOUT ROWID",
    "source_desks": "CREATE TABLE source_desks (source_id TEXT NOT NULL"
    " REFERENCES sources (source_id) ON DELETE CASCADE,"
    " desk_id TEXT NOT NULL, PRIMARY KEY (source_id, desk_id)) WITHOUT ROWID",
    "acks": "CREATE TABLE acks (submission_id TEXT NOT NULL, desk_id TEXT NOT NULL,"
    " PRIMARY KEY (submission_id, desk_id)) WITHOUT ROWID",
    "transfer_keys": "CREATE TABLE transfer_keys (desk_id TEXT NOT NULL,"
    " verify_key TEXT NOT NULL, PRIMARY KEY (desk_id, verify_key)) WITHOUT ROWID",
    "replies": "CREATE TABLE replies (id TEXT NOT NULL PRIMARY KEY,"
    " reply_recipient TEXT NOT NULL, desk_id TEXT NOT NULL, day TEXT NOT NULL,"
    " ciphertext_size INTEGER NOT NULL, position INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID",
    "applied_bundles": "CREATE TABLE applied_bundles (id TEXT NOT NULL PRIMARY KEY)"
    " WITHOUT ROWID",
}
# Parents before children (the foreign keys are checked as rows are copied).
_V3_COPY = {
    "files": "INSERT INTO files (id, submission_id, kind, ciphertext_size, position)"
    " SELECT id, submission_id, kind, ciphertext_size,"
    " ROW_NUMBER() OVER (PARTITION BY submission_id ORDER BY rowid) - 1 FROM old_files",
    "replies": "INSERT INTO replies (id, reply_recipient, desk_id, day, ciphertext_size,"
    " position) SELECT id, reply_recipient, desk_id, day, ciphertext_size,"
    " ROW_NUMBER() OVER (PARTITION BY reply_recipient ORDER BY rowid) - 1"
    " FROM old_replies",
}
_V3_INDEXES = (
    "CREATE INDEX idx_files_submission_id ON files (submission_id)",
    "CREATE INDEX replies_by_recipient ON replies (reply_recipient)",
)


def _to_v3(conn: sqlite3.Connection) -> None:
    """Version 3: every table made before version 2 but export_seq rebuilt WITHOUT ROWID,
    every row kept.

    The old tables are renamed away first (SQLite points the children's foreign keys
    at the renamed parents, so nothing dangles while both exist), the new ones made
    under the old names and filled, then the old ones dropped, children first. The
    old pages are zeroed as they are freed (secure_delete).
    """
    for index in ("idx_files_submission_id", "replies_by_recipient"):
        conn.execute(f"DROP INDEX IF EXISTS {index}")  # noqa: S608
    for table in _V3_TABLES:
        conn.execute(f"ALTER TABLE {table} RENAME TO old_{table}")  # noqa: S608
    for table, ddl in _V3_TABLES.items():
        conn.execute(ddl)
        # Table names from _V3_TABLES, never from outside.
        copy = _V3_COPY.get(table, f"INSERT INTO {table} SELECT * FROM old_{table}")  # noqa: S608
        conn.execute(copy)
    for table in reversed(_V3_TABLES):
        conn.execute(f"DROP TABLE old_{table}")  # noqa: S608
    for ddl in _V3_INDEXES:
        conn.execute(ddl)


# In order: MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_to_v1, _to_v2, _to_v3)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"the database has schema version {version}, newer than this intake-server"
            f" knows ({SCHEMA_VERSION}): it was made by a later version; refusing to"
            " open it (upgrade intake-server, or restore a backup made by this version)")


def open_database(path: Path) -> sqlite3.Connection:
    """Connect to the database at ``path`` (created if missing) and migrate it to
    SCHEMA_VERSION. Raises SchemaError, having written nothing, if it is newer."""
    _private_database_files(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # Before any pragma: journal_mode=WAL would already write to the file.
        _refuse_newer(schema_version(conn))
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed row survives a power cut, so "received" means received.
        conn.execute("PRAGMA synchronous=FULL")
        # Deleted rows are overwritten with zeros, not left in free pages.
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _private_database_files(path: Path) -> None:
    """The database and its WAL and SHM 0600, whatever the umask.

    SQLite creates them with the umask's mode (0644 under the usual 022), but creates
    the WAL and SHM with the database file's own mode: so the database file is created
    here, 0600, before SQLite opens it. Files an older version left 0644 are closed.
    """
    with contextlib.suppress(fs.FileExistsRefused):  # another process made it first
        if not path.exists():
            fs.create_exclusive(path.parent, path.name).close()
    for suffix in ("", "-wal", "-shm"):
        try:
            # Read-only and never through a link: only the mode is changed.
            fd = os.open(f"{path}{suffix}", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            os.fchmod(fd, fs.FILE_MODE)
        finally:
            os.close(fd)


def _migrate(conn: sqlite3.Connection) -> None:
    if schema_version(conn) == SCHEMA_VERSION:
        return
    with immediate_transaction(conn):
        # Read again under the write lock: an operator command and the server may
        # open the same database at once, and only one of them migrates.
        version = schema_version(conn)
        _refuse_newer(version)
        for migration in MIGRATIONS[version:]:
            migration(conn)
        # PRAGMA takes no parameters; SCHEMA_VERSION is an int of ours.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(r[0]) for r in rows}


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    # table_xinfo takes the table name as a bound argument: no SQL is built from it.
    rows = conn.execute("SELECT name FROM pragma_table_xinfo(?)", (table,)).fetchall()
    return {str(r[0]) for r in rows}
