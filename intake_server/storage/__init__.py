"""Ciphertext on disk and metadata in SQLite: the server's whole persistent state.

The package has three rooms:

- ``pipeline.py``: how one submission's files are written (a Transaction): streamed,
  encrypted, made durable in ``store/``, and only then recorded. Its docstring gives
  the order that makes the server crash-safe;
- ``schema.py``: every table of the database (the source side's and the staff
  side's), the migrations between versions, and what is stored in plaintext;
- this module: ``Storage``, the data directory (``incoming/``, ``store/``,
  ``intake.db``) as a whole: opening it, removing what a crash left behind, the
  quota and free-space checks (with the space reserved for uploads in flight), and
  the source side's rows.

A crash before a submission's rows are committed leaves files in ``incoming/`` or
unreferenced files in ``store/``: ``Storage.open()`` deletes both before the server
accepts requests. Every time stored, on a file or in a row, is a UTC day, never finer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from intake_server.config import Config
from keys import fs

from .errors import (
    DiskFull,
    QuotaExceeded,
    SchemaError,
    StorageError,
    disk_full_on_error,
    is_out_of_space,
)
from .pipeline import BATCHES_AHEAD, WRITE_BATCH, PendingFile, Transaction, new_id, utc_today
from .schema import immediate_transaction, nested_transaction, open_database

__all__ = [
    "BATCHES_AHEAD",
    "WRITE_BATCH",
    "DiskFull",
    "PendingFile",
    "QuotaExceeded",
    "SchemaError",
    "Storage",
    "StorageError",
    "Transaction",
    "immediate_transaction",
    "nested_transaction",
    "is_out_of_space",
    "new_id",
    "utc_today",
]

log = logging.getLogger("intake_server.storage")


class Storage:
    """The data directory: incoming/, store/ and intake.db."""

    def __init__(self, config: Config,
                 free_space: Callable[[Path], int] | None = None) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.incoming_dir = config.incoming_dir
        self.store_dir = config.store_dir
        # Ciphertext committed in store/.
        self.used_bytes = 0
        # Held for uploads in flight, against the quota: for each, the space it
        # reserved at begin() or what it has sealed, whichever is more.
        self.reserved_bytes = 0
        # Of that, what they may still write, against the free-space floor: the disk
        # already shows what they wrote. All three only change on the event loop.
        self.pending_bytes = 0
        self._free_space = free_space or _statvfs_free
        self._db: sqlite_utils.Database | None = None
        self._lock_fd: int | None = None
        # Transactions not yet committed or discarded; close() waits for them.
        self._live: set[Transaction] = set()
        self._none_live = asyncio.Event()
        self._none_live.set()

    @property
    def serving(self) -> bool:
        return self._lock_fd is not None

    @property
    def is_open(self) -> bool:
        """True from open() until close(): the database can be used."""
        return self._db is not None

    def _track(self, txn: Transaction) -> None:
        self._live.add(txn)
        self._none_live.clear()

    def _untrack(self, txn: Transaction) -> None:
        self._live.discard(txn)
        if not self._live:
            self._none_live.set()

    async def uploads_ended(self, timeout: float) -> bool:
        """Wait until every transaction has been committed or discarded (at shutdown,
        after the upload handlers were cancelled: an aborted upload's files are only
        deleted once its thread has ended). False if some were still live after
        ``timeout`` seconds; what they leave behind, open() removes at the next start."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._none_live.wait()
        return not self._live

    # -- lifecycle ---------------------------------------------------------

    def open(self, *, serving: bool = True) -> None:
        """Open the database. ``serving``: this process is the server, so it takes the
        data directory's lock and removes what an interrupted upload left behind.

        An operator command opens with ``serving=False`` while the server may be running:
        it must never clean up, because "left behind" would then include the server's
        uploads in flight and files about to be committed.
        """
        for d in (self.data_dir, self.incoming_dir, self.store_dir):
            fs.private_dir(d, parents=True)
        if serving:
            self._lock_fd = fs.lock_exclusive(self.data_dir / ".server.lock")
            if self._lock_fd is None:
                raise StorageError(
                    f"another intake-server is already serving {self.data_dir}")
            # Created at the first start, it would keep that moment to the second.
            fs.set_day(self.data_dir / ".server.lock", utc_today())
        try:
            conn = open_database(self.config.db_path)
        except BaseException:
            self.close()  # releases the lock: nothing was opened
            raise
        self._db = sqlite_utils.Database(conn)
        if serving:
            self.remove_orphans()
        row = self.db.execute("SELECT COALESCE(SUM(ciphertext_size), 0) FROM files").fetchone()
        self.used_bytes = int(row[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.conn.close()
            self._db = None
            # Closing checkpointed intake.db and removed the WAL and SHM: both files and
            # data/ would keep the moment of a clean stop.
            self.date_db_files(utc_today())
            if self._lock_fd is not None:
                fs.set_day(self.data_dir / ".server.lock", utc_today())
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    @property
    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            raise StorageError("storage is not open")
        return self._db

    def remove_orphans(self) -> int:
        """Delete what a crash left behind: all of incoming/, unreferenced store/ files."""
        removed = 0
        for name in list(fs.list_names(self.incoming_dir)):
            # A listed entry, not a name from outside. It may be hidden: the partial
            # file of a referral extracted from an outbox bundle (keys.fs.AtomicWriter),
            # whose name safe_unlink would refuse, and the server would not start.
            fs.safe_remove(self.incoming_dir / name)
            removed += 1
        known = {f"{r[0]}.age" for r in self.db.execute("SELECT id FROM files").fetchall()}
        for name in list(fs.list_names(self.store_dir)):
            if name not in known:
                fs.safe_unlink(self.store_dir, name)
                removed += 1
        for d in (self.incoming_dir, self.store_dir):
            fs.set_day(d, utc_today())
        if removed:
            fs.fsync_dir(self.incoming_dir)
            fs.fsync_dir(self.store_dir)
            log.warning("removed %d orphaned file(s) left by an interrupted upload", removed)
        return removed

    # -- writing -----------------------------------------------------------

    def free_bytes(self) -> int:
        """Free space on the data directory's file system, for whoever must fit a file."""
        return self._free_space(self.data_dir)

    def check_free_space(self, more: int = 0) -> None:
        """Refuse (DiskFull) if the uploads in flight, once written, and ``more``
        bytes would leave less than the floor free."""
        free = self._free_space(self.data_dir) - self.pending_bytes - more
        if free < self.config.min_free_bytes:
            raise DiskFull("free space below the configured floor")

    def check_quota(self, more: int = 0) -> None:
        """Refuse (QuotaExceeded) if the store, the uploads in flight and ``more``
        bytes would reach the quota."""
        held = self.used_bytes + self.reserved_bytes
        if held >= self.config.disk_quota_bytes or held + more > self.config.disk_quota_bytes:
            raise QuotaExceeded("disk quota reached")

    def begin(self, recipients: Sequence[Any], day: _dt.date | None = None, *,
              expected: int = 0) -> Transaction:
        """A new transaction, with ``expected`` bytes of ciphertext reserved for it
        against the quota and the free-space floor, or QuotaExceeded/DiskFull if they
        do not fit beside the uploads already in flight. Concurrent uploads each
        checking only for themselves would all pass and all fail together."""
        self.check_quota(expected)
        self.check_free_space(expected)
        return Transaction(self, recipients, day or utc_today(), expected=expected)

    def insert_submission(self, *, submission_id: str, day: _dt.date, desks: Sequence[str],
                          source_id: str, reply_recipient: str,
                          files: Sequence[PendingFile], kind: str = "report") -> None:
        if kind not in ("report", "followup"):
            raise ValueError("kind must be report or followup")
        conn = self.db.conn
        # Plain SQL in one explicit transaction: sqlite-utils' insert() would commit
        # each table on its own, and a crash in between would half-record the report.
        # A full disk (SQLITE_FULL, most often on COMMIT) rolls it all back: DiskFull.
        with disk_full_on_error(), immediate_transaction(conn):
            conn.execute("INSERT INTO submissions (id, day, source_id, reply_recipient, type) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (submission_id, day.isoformat(), source_id, reply_recipient, kind))
            conn.executemany("INSERT INTO submission_desks (submission_id, desk_id) "
                             "VALUES (?, ?)", [(submission_id, d) for d in desks])
            # The source outlives its submissions (they go once every desk acked).
            conn.execute("INSERT INTO sources (source_id, reply_recipient, last_seen_day)"
                         " VALUES (?, ?, ?) ON CONFLICT (source_id)"
                         " DO UPDATE SET last_seen_day = excluded.last_seen_day",
                         (source_id, reply_recipient, day.isoformat()))
            conn.executemany("INSERT OR IGNORE INTO source_desks (source_id, desk_id)"
                             " VALUES (?, ?)", [(source_id, d) for d in desks])
            conn.executemany("INSERT INTO files (id, submission_id, kind, ciphertext_size,"
                             " position) VALUES (?, ?, ?, ?, ?)",
                             [(f.id, submission_id, f.kind, f.ciphertext_size, n)
                              for n, f in enumerate(files)])
        self.date_db_files(day)

    def date_db_files(self, day: _dt.date) -> None:
        """Set the database files' mtimes to the day: they would date the last write.

        Runs after a commit, so it must not fail the request: the report is already
        received (a file the checkpoint just removed is simply skipped)."""
        paths = [Path(f"{self.config.db_path}{s}") for s in ("", "-wal", "-shm")]
        for path in [*paths, self.data_dir]:
            try:
                fs.set_day(path, day)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("could not reset a timestamp to the day: %s", type(exc).__name__)

    # -- sources -----------------------------------------------------------

    def find_source(self, source_id: str) -> str | None:
        """The reply recipient of a known source, or None."""
        row = self.db.execute("SELECT reply_recipient FROM sources WHERE source_id = ?",
                              (source_id,)).fetchone()
        return None if row is None else str(row[0])

    def touch_source(self, source_id: str, day: _dt.date | None = None) -> None:
        """Record that the source logged in today (the UTC day, never a time)."""
        day = day or utc_today()
        with disk_full_on_error():
            self.db.execute("UPDATE sources SET last_seen_day = ? WHERE source_id = ?",
                            (day.isoformat(), source_id))
        self.date_db_files(day)

    def source_desks(self, source_id: str) -> list[str]:
        rows = self.db.execute("SELECT desk_id FROM source_desks WHERE source_id = ?"
                               " ORDER BY desk_id", (source_id,)).fetchall()
        return [str(r[0]) for r in rows]

    # -- reading (tests, staff app) ---------------------------------------

    def submissions(self) -> list[dict[str, Any]]:
        return list(self.db["submissions"].rows)

    def files_of(self, submission_id: str) -> list[dict[str, Any]]:
        return list(self.db["files"].rows_where("submission_id = ?", [submission_id]))

    def desks_of(self, submission_id: str) -> list[str]:
        return [r["desk_id"] for r in
                self.db["submission_desks"].rows_where("submission_id = ?", [submission_id])]

    def store_path(self, file_id: str) -> Path:
        return fs.safe_join(self.store_dir, f"{file_id}.age")


def _statvfs_free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
