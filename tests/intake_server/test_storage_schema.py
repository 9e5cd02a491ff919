"""The database schema: one place makes every table, versioned with PRAGMA user_version.

A database made by 0.1.0 (no version, tables made at start-up by two modules) opens and
is migrated without losing a row; so do the older shapes 0.1.0 itself still upgraded; a
database from a newer version is refused and left as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from intake_server.staff.store import StaffStore
from intake_server.storage import SchemaError, Storage, schema
from support.intake import Install, make_install

# The schema as shipped in 0.1.0, exactly as that version left it in sqlite_master
# (submission_desks and files were made by sqlite-utils, hence the quoting). Kept here
# as it was, whatever schema.py becomes: databases like this are in the field.
SCHEMA_0_1_0 = (
    "CREATE TABLE submissions (id TEXT PRIMARY KEY, day TEXT, source_id TEXT,"
    " reply_recipient TEXT, type TEXT NOT NULL DEFAULT 'report'"
    " CHECK (type IN ('report', 'followup')))",
    'CREATE TABLE "submission_desks" (\n   "submission_id" TEXT REFERENCES'
    ' "submissions"("id"),\n   "desk_id" TEXT,\n   PRIMARY KEY ("submission_id",'
    ' "desk_id")\n)',
    'CREATE TABLE "files" (\n   "id" TEXT PRIMARY KEY,\n   "submission_id" TEXT'
    ' REFERENCES "submissions"("id"),\n   "kind" TEXT,\n   "ciphertext_size" INTEGER\n)',
    'CREATE INDEX "idx_files_submission_id"\n    ON "files" ("submission_id")',
    "CREATE TABLE sources (source_id TEXT PRIMARY KEY, reply_recipient TEXT NOT NULL,"
    " last_seen_day TEXT NOT NULL)",
    "CREATE TABLE source_desks (source_id TEXT NOT NULL REFERENCES sources (source_id)"
    " ON DELETE CASCADE, desk_id TEXT NOT NULL, PRIMARY KEY (source_id, desk_id))",
    "CREATE TABLE export_seq ( seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " submission_id TEXT NOT NULL UNIQUE)",
    "CREATE TABLE acks ( submission_id TEXT NOT NULL, desk_id TEXT NOT NULL,"
    " PRIMARY KEY (submission_id, desk_id))",
    "CREATE TABLE transfer_keys ( desk_id TEXT NOT NULL, verify_key TEXT NOT NULL,"
    " PRIMARY KEY (desk_id, verify_key))",
    "CREATE TABLE replies ( id TEXT PRIMARY KEY, reply_recipient TEXT NOT NULL,"
    " desk_id TEXT NOT NULL, day TEXT NOT NULL, ciphertext_size INTEGER NOT NULL)",
    "CREATE INDEX replies_by_recipient ON replies (reply_recipient)",
    "CREATE TABLE applied_bundles (id TEXT PRIMARY KEY)",
)

TABLES = {"submissions", "submission_desks", "files", "sources", "source_desks",
          "export_seq", "acks", "transfer_keys", "replies", "applied_bundles",
          "sqlite_sequence", "unacknowledged_deletions"}

SID1, SID2 = "1" * 32, "2" * 32
FILE1, FILE2, FILE3 = "a" * 32, "b" * 32, "c" * 32
SOURCE = "5" * 64
RECIPIENT = "age1source"
REPLY = "e" * 32

# Two submissions from one source (a report to both desks, a follow-up to one), the
# triage desk's acknowledgement of the first, a transfer key, a reply, a bundle applied.
ROWS_0_1_0 = (
    ("INSERT INTO submissions (id, day, source_id, reply_recipient, type)"
     " VALUES (?, ?, ?, ?, ?)",
     [(SID1, "2026-01-02", SOURCE, RECIPIENT, "report"),
      (SID2, "2026-01-05", SOURCE, RECIPIENT, "followup")]),
    ("INSERT INTO submission_desks VALUES (?, ?)",
     [(SID1, "triage"), (SID1, "forensics"), (SID2, "forensics")]),
    ("INSERT INTO files VALUES (?, ?, ?, ?)",
     [(FILE1, SID1, "report", 300), (FILE2, SID1, "attachment", 7000),
      (FILE3, SID2, "report", 250)]),
    ("INSERT INTO sources VALUES (?, ?, ?)", [(SOURCE, RECIPIENT, "2026-01-06")]),
    ("INSERT INTO source_desks VALUES (?, ?)", [(SOURCE, "triage"), (SOURCE, "forensics")]),
    ("INSERT INTO export_seq (submission_id) VALUES (?)", [(SID1,), (SID2,)]),
    ("INSERT INTO acks VALUES (?, ?)", [(SID1, "triage")]),
    ("INSERT INTO transfer_keys VALUES (?, ?)", [("forensics", "amana-verify-key-1")]),
    ("INSERT INTO replies VALUES (?, ?, ?, ?, ?)",
     [(REPLY, RECIPIENT, "triage", "2026-01-06", 400)]),
    ("INSERT INTO applied_bundles VALUES (?)", [("f" * 32,)]),
)


def _database(path: Path, ddl: tuple[str, ...],
              rows: tuple[tuple[str, list[tuple[object, ...]]], ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in ddl:
        conn.execute(statement)
    for sql, values in rows:
        conn.executemany(sql, values)
    conn.close()


def _ciphertext(*files: tuple[Path, tuple[str, int]]) -> None:
    """The files the rows refer to (start-up deletes store/ files no row names)."""
    for directory, (file_id, size) in files:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (directory / f"{file_id}.age").write_bytes(b"x" * size)


def _dump(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in a stable order."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(),  # noqa: S608
                         key=repr)
            for name in names}


def _shape(conn: sqlite3.Connection) -> dict[str, object]:
    """Each table's columns, keys, indexes and foreign keys, as SQLite reads them
    (the CREATE statements' spelling aside)."""
    shape: dict[str, object] = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        indexes = sorted(
            (bool(unique), origin,
             [c[2] for c in conn.execute("SELECT * FROM pragma_index_info(?)", (index,))])
            for _, index, unique, origin, _ in conn.execute(
                "SELECT * FROM pragma_index_list(?)", (name,)))
        shape[name] = (
            conn.execute("SELECT * FROM pragma_table_xinfo(?)", (name,)).fetchall(),
            indexes,
            sorted(conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (name,))),
        )
    return shape


def _open(inst: Install) -> tuple[Storage, StaffStore]:
    storage = Storage(inst.config)
    storage.open()
    store = StaffStore(storage)
    store.open()
    return storage, store


def test_a_new_database_has_every_table_at_the_current_version(tmp_path: Path) -> None:
    storage, _ = _open(make_install(tmp_path))
    conn = storage.db.conn
    assert schema.schema_version(conn) == schema.SCHEMA_VERSION == len(schema.MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == TABLES
    storage.close()


def test_staff_store_open_creates_no_table(tmp_path: Path) -> None:
    storage = Storage(make_install(tmp_path).config)
    storage.open()
    before = storage.db.conn.execute("SELECT * FROM sqlite_master").fetchall()
    StaffStore(storage).open()
    assert storage.db.conn.execute("SELECT * FROM sqlite_master").fetchall() == before
    storage.close()


def test_a_0_1_0_database_is_migrated_without_loss(tmp_path: Path) -> None:
    inst = make_install(tmp_path)
    db_path = inst.config.db_path
    _database(db_path, SCHEMA_0_1_0, ROWS_0_1_0)
    _ciphertext((inst.config.store_dir, (FILE1, 300)),
                (inst.config.store_dir, (FILE2, 7000)), (inst.config.store_dir, (FILE3, 250)),
                (inst.data_dir / "replies", (REPLY, 400)))
    with closing(sqlite3.connect(db_path)) as old:
        rows_before = _dump(old)
        assert schema.schema_version(old) == 0

    storage, store = _open(inst)
    conn = storage.db.conn
    assert schema.schema_version(conn) == schema.SCHEMA_VERSION
    # Every row kept; files and replies gained their position (version 3).
    rows_before["files"] = sorted(
        [(*row, {FILE1: 0, FILE2: 1, FILE3: 0}[str(row[0])]) for row in rows_before["files"]],
        key=repr)
    rows_before["replies"] = [(*row, 0) for row in rows_before["replies"]]
    migrated = _dump(conn)
    assert {t: rows for t, rows in migrated.items() if t in rows_before} == rows_before
    assert migrated["unacknowledged_deletions"] == []  # version 2's table, empty
    (tmp_path / "fresh").mkdir()
    fresh_inst = make_install(tmp_path / "fresh")
    fresh, _ = _open(fresh_inst)
    assert _shape(conn) == _shape(fresh.db.conn)
    fresh.close()
    # And the migrated database is used as before: the forensics desk has both
    # submissions to fetch (the triage desk acknowledged its own), in order.
    assert storage.used_bytes == 300 + 7000 + 250
    assert [(i.seq, i.id, i.type) for i in store.pending("forensics", 0)] == \
        [(1, SID1, "report"), (2, SID2, "followup")]
    assert [i.id for i in store.pending("triage", 0)] == []
    assert storage.source_desks(SOURCE) == ["forensics", "triage"]
    assert [r["id"] for r in store.replies_for(RECIPIENT)] == [REPLY]
    assert store.claim_bundle("f" * 32) is False
    storage.insert_submission(submission_id="3" * 32, day=dt.date(2026, 1, 7),
                              desks=["triage"], source_id=SOURCE, reply_recipient=RECIPIENT,
                              files=[], kind="followup")
    store.pending("triage", 0)  # numbers it (it has no file, so it is not exported)
    assert conn.execute("SELECT seq FROM export_seq WHERE submission_id = ?",
                        ("3" * 32,)).fetchone() == (3,)
    storage.close()

    # Opening again changes nothing: the version says the migration has run.
    with closing(sqlite3.connect(db_path)) as again:
        rows_after = _dump(again)
    storage, _ = _open(inst)
    assert _dump(storage.db.conn) == rows_after
    storage.close()


def test_older_shapes_that_0_1_0_upgraded_are_still_upgraded(tmp_path: Path) -> None:
    """From before follow-ups (no submissions.type) and before sources had tables of
    their own: 0.1.0 added the column and filled the tables from the submissions."""
    inst = make_install(tmp_path)
    older = (
        "CREATE TABLE submissions (id TEXT PRIMARY KEY, day TEXT, source_id TEXT,"
        " reply_recipient TEXT)",
        *SCHEMA_0_1_0[1:4],
    )
    rows = (
        ("INSERT INTO submissions VALUES (?, ?, ?, ?)",
         [(SID1, "2026-01-02", SOURCE, RECIPIENT), (SID2, "2026-01-05", SOURCE, RECIPIENT)]),
        ROWS_0_1_0[1],
        ("INSERT INTO files VALUES (?, ?, ?, ?)", [(FILE1, SID1, "report", 300)]),
    )
    _database(inst.config.db_path, older, rows)
    _ciphertext((inst.config.store_dir, (FILE1, 300)))

    storage, store = _open(inst)
    conn = storage.db.conn
    assert schema.schema_version(conn) == schema.SCHEMA_VERSION
    assert sorted(conn.execute("SELECT id, type FROM submissions")) == \
        [(SID1, "report"), (SID2, "report")]
    assert conn.execute("SELECT * FROM sources").fetchall() == \
        [(SOURCE, RECIPIENT, "2026-01-05")]
    assert sorted(storage.source_desks(SOURCE)) == ["forensics", "triage"]
    assert storage.find_source(SOURCE) == RECIPIENT
    assert [i.id for i in store.pending("forensics", 0)] == [SID1]  # SID2 has no file
    storage.close()


def test_a_database_from_a_newer_version_is_refused_and_left_alone(tmp_path: Path) -> None:
    inst = make_install(tmp_path)
    storage, _ = _open(inst)
    storage.close()
    db_path = inst.config.db_path
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.execute("CREATE TABLE from_the_future (x)")
    conn.close()
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    mtime = db_path.stat().st_mtime_ns

    for _ in range(2):  # the refusal released the data directory's lock
        storage = Storage(inst.config)
        newer = rf"schema version {schema.SCHEMA_VERSION + 1}, newer than .*" \
            rf" knows \({schema.SCHEMA_VERSION}\)"
        with pytest.raises(SchemaError, match=newer):
            storage.open()
        assert not storage.is_open
        assert not storage.serving
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before
    assert db_path.stat().st_mtime_ns == mtime


def test_migrations_run_in_order_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at the current version gets only the migrations after it; a migration
    that fails leaves the database at the version it had, with nothing of the others
    applied."""
    inst = make_install(tmp_path)
    storage, _ = _open(inst)
    storage.close()
    current = schema.SCHEMA_VERSION
    ran: list[str] = []

    def to_next(conn: sqlite3.Connection) -> None:
        ran.append("next")
        conn.execute("CREATE TABLE added_next (x)")

    def to_failing(conn: sqlite3.Connection) -> None:
        ran.append("failing")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, to_next, to_failing))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 2)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        Storage(inst.config).open()
    assert ran == ["next", "failing"]
    with closing(sqlite3.connect(inst.config.db_path)) as conn:
        assert schema.schema_version(conn) == current
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'added_next'"
                            ).fetchone() is None

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS[:current + 1],))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    ran.clear()
    storage, _ = _open(inst)
    assert ran == ["next"]
    assert schema.schema_version(storage.db.conn) == current + 1
    storage.close()


def test_a_version_1_database_is_rebuilt_without_rowid_keeping_every_row(
    tmp_path: Path,
) -> None:
    """Version 3 (issue 13, item 17): a rowid records the order rows were inserted in,
    that is the order of arrival. Every table keyed by a random id is rebuilt WITHOUT
    ROWID from a version-1 database, every row kept, each submission's files in their
    order."""
    inst = make_install(tmp_path)
    db_path = inst.config.db_path
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as old:
        schema.MIGRATIONS[0](old)  # exactly what version 1 made
        old.execute("PRAGMA user_version = 1")
        # Inserted out of id order, and the attachment's id sorts before its report's:
        # only the rowid knew the report came first.
        for sql, values in ROWS_0_1_0:
            old.executemany(sql, list(reversed(values)) if "files" not in sql else
                            [(FILE2, SID1, "report", 300), (FILE1, SID1, "attachment", 7000),
                             (FILE3, SID2, "report", 250)])
        # A later reply to the same source, whose id sorts first.
        old.execute("INSERT INTO replies VALUES (?, ?, ?, ?, ?)",
                    ("0" * 32, RECIPIENT, "forensics", "2026-01-06", 500))
        rows_before = _dump(old)
    _ciphertext((inst.config.store_dir, (FILE1, 7000)),
                (inst.config.store_dir, (FILE2, 300)), (inst.config.store_dir, (FILE3, 250)),
                (inst.data_dir / "replies", (REPLY, 400)))

    storage, store = _open(inst)
    conn = storage.db.conn
    assert schema.schema_version(conn) == schema.SCHEMA_VERSION >= 3
    rows_before["files"] = sorted(
        [(*row, {FILE2: 0, FILE1: 1, FILE3: 0}[str(row[0])]) for row in rows_before["files"]],
        key=repr)
    rows_before["replies"] = sorted(
        [(*row, 0 if row[0] == REPLY else 1) for row in rows_before["replies"]], key=repr)
    migrated = _dump(conn)
    assert {t: rows for t, rows in migrated.items() if t in rows_before} == rows_before
    assert [r["id"] for r in store.replies_for(RECIPIENT)] == ["0" * 32, REPLY]  # newest first
    for table in TABLES - {"export_seq", "sqlite_sequence"}:
        with pytest.raises(sqlite3.OperationalError, match="no such column: rowid"):
            conn.execute(f"SELECT rowid FROM {table}")  # noqa: S608
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    item = {i.id: i for i in store.pending("forensics", 0)}[SID1]
    assert (item.id, item.report_file, item.attachment_files) == (SID1, FILE2, (FILE1,))
    (tmp_path / "fresh").mkdir()
    fresh, _ = _open(make_install(tmp_path / "fresh"))
    assert _shape(conn) == _shape(fresh.db.conn)
    fresh.close()
    storage.close()


def test_database_files_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    """SQLite creates intake.db, -wal and -shm with the umask's mode; they must be 0600
    (issue 13, item 17), and an older install's 0644 files are closed at open."""
    inst = make_install(tmp_path)
    old_umask = os.umask(0o022)
    try:
        storage, _ = _open(inst)
        storage.insert_submission(submission_id=SID1, day=dt.date(2026, 1, 7), desks=["triage"],
                                  source_id=SOURCE, reply_recipient=RECIPIENT, files=[])
        paths = sorted(inst.data_dir.glob("intake.db*"))
        assert [p.name for p in paths] == ["intake.db", "intake.db-shm", "intake.db-wal"]
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths} == \
            {p.name: 0o600 for p in paths}
        storage.close()
        inst.config.db_path.chmod(0o644)  # as an older version left it
        storage, _ = _open(inst)
        assert stat.S_IMODE(inst.config.db_path.stat().st_mode) == 0o600
        storage.close()
    finally:
        os.umask(old_umask)
