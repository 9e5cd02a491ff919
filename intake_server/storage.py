"""Ciphertext on disk and metadata in SQLite: the server's whole persistent state.

A submission is written as a Transaction:

1. every file (the report JSON and each attachment) is streamed through an age
   Encryptor into ``incoming/<random id>.age`` (created O_EXCL, mode 0600);
2. ``commit()`` flushes and fsyncs each file, sets its mtime to midnight UTC of
   the day, renames it into ``store/`` and fsyncs ``store/``;
3. only then one SQLite transaction (WAL, synchronous=FULL) inserts the rows;
4. only then the caller tells the source "received".

A crash before step 3 leaves files in ``incoming/`` or unreferenced files in
``store/``: ``Storage.open()`` deletes both before the server accepts requests.
A crash after step 3 loses nothing. Any error makes ``abort()`` delete every
file of the transaction, so a refused upload leaves nothing behind.

What is stored in plaintext: random ids, the desks a submission is for, the
ciphertext sizes, the UTC day, whether it is a first report or a follow-up, the
source id (an Argon2id hash of the codename) and the source's reply recipient.
Nothing else.

A source also has a row of its own in ``sources`` (source id, reply recipient,
the UTC day it was last seen) and ``source_desks`` (the desks it has written
to): a source must be able to log in, read replies and send follow-ups to the
same desks after the desks have imported, acknowledged and so deleted its
submissions. Retention (staff/store.py) deletes a source idle for longer than
the retention period, with its replies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as _dt
import hashlib
import logging
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import sqlite_utils

from keys.age import Encryptor

from . import _fs
from .config import Config

__all__ = [
    "DiskFull",
    "PendingFile",
    "QuotaExceeded",
    "Storage",
    "StorageError",
    "Transaction",
    "immediate_transaction",
    "new_id",
    "utc_today",
]

log = logging.getLogger("intake_server.storage")

# Check free space every this many bytes written, not on every chunk.
_FREE_SPACE_CHECK_EVERY = 8 * 1024 * 1024
# Start writing a file's ciphertext out to disk every this many bytes.
_WRITEBACK_EVERY = 8 * 1024 * 1024
# Hand an upload's ciphertext to its thread in batches of at least this much:
# one thread hand-off per batch, not per piece.
WRITE_BATCH = 1024 * 1024
# Batches an upload may have queued or running on its thread before the event loop
# waits for the oldest: two keep both sides busy through the bumps of either.
BATCHES_AHEAD = 2


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


class StorageError(Exception):
    """The submission cannot be stored."""


class QuotaExceeded(StorageError):
    """Storing this would exceed the configured disk quota."""


class DiskFull(StorageError):
    """Free space on the data disk is below the configured floor."""


def new_id() -> str:
    """A random identifier: 128 bits from the OS CSPRNG, hex."""
    return secrets.token_hex(16)


def utc_today() -> _dt.date:
    return _dt.datetime.now(_dt.UTC).date()


class _Sealed:
    """Where a file's age encryptor writes: the ciphertext collects in memory until
    it is taken to the disk. Counted on the way in, so a write past the quota is
    refused before any of it reaches the disk."""

    def __init__(self, on_bytes: Callable[[int], None]) -> None:
        self._on_bytes = on_bytes
        self._data = bytearray()
        self.count = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        self._on_bytes(n)
        self._data += data
        self.count += n
        return n

    def __len__(self) -> int:
        return len(self._data)

    def take(self) -> bytearray:
        out, self._data = self._data, bytearray()
        return out


class _Lane:
    """One upload's work off the event loop: jobs run one after another, in order,
    on a thread of the upload's own; once more than ``ahead`` are queued or running,
    run() waits for the oldest. A disk that stalls (a frozen file system, a
    throttled volume, the kernel throttling a writer with too many dirty pages) then
    holds up this upload only, never the event loop nor another upload.

    Waits are shielded: if the waiting task is cancelled, the job goes on in its
    thread and stays tracked, so that abort() can wait for it rather than close and
    delete a file under it."""

    def __init__(self, ahead: int = BATCHES_AHEAD) -> None:
        self._ahead = ahead
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: collections.deque[asyncio.Future[None]] = collections.deque()

    async def run(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue fn(*args) behind the jobs already queued; wait only if too many are."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="amana-upload")
        self._jobs.append(asyncio.get_running_loop().run_in_executor(self._pool, fn, *args))
        while len(self._jobs) > self._ahead:
            await self._oldest()

    async def drain(self) -> None:
        """Wait for every job; the first error is raised here."""
        while self._jobs:
            await self._oldest()

    async def _oldest(self) -> None:
        job = self._jobs[0]
        try:
            await asyncio.shield(job)
        finally:
            if job.done() and self._jobs and self._jobs[0] is job:
                self._jobs.popleft()

    def abandon(self, callback: Callable[[], None]) -> None:
        """Cancel the jobs not yet started, and call back once the one running (if
        any) has ended. Errors are not raised: whoever abandons has given up."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        jobs = list(self._jobs)
        self._jobs.clear()
        if any(not job.done() for job in jobs):
            asyncio.gather(*jobs, return_exceptions=True).add_done_callback(
                lambda _: callback())
        else:
            for job in jobs:
                if not job.cancelled():
                    job.exception()  # retrieved: asyncio would log it as never seen
            callback()

    def close(self) -> None:
        """Let the thread end once its jobs have (when nothing more will come)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)


@dataclass
class PendingFile:
    """One age file being written into incoming/.

    ``write()`` encrypts plaintext on the event loop, and keeps a reference to it.
    ``flush()`` hands the batch to the upload's thread (a _Lane), which computes
    the plaintext's SHA-256 and writes the ciphertext out, while the loop receives
    and encrypts the next batches. SHA-256 is about a third of an upload's CPU:
    on the loop, it held a two-core server to less than half the ``age`` binary's
    throughput (docs/benchmarks.md).
    """

    id: str
    kind: str  # "report" or "attachment"
    _raw: BinaryIO
    _out: _Sealed
    _enc: Any
    _lane: _Lane
    plaintext_size: int = 0
    _written: int = 0
    _written_back: int = 0
    _to_hash: list[bytes | memoryview] = field(default_factory=list)
    _sha256: Any = field(default_factory=hashlib.sha256)
    _failed: bool = False
    finished: bool = False

    @property
    def name(self) -> str:
        return f"{self.id}.age"

    @property
    def ciphertext_size(self) -> int:
        return self._out.count

    @property
    def unwritten(self) -> int:
        """Bytes of ciphertext sealed but not yet handed to flush()."""
        return len(self._out)

    def write(self, data: bytes | memoryview) -> None:
        """Encrypt plaintext into memory. Calls must be in order, and ``data`` must
        not change afterwards: it is hashed later, on the upload's thread."""
        self.plaintext_size += len(data)
        self._enc.write(data)
        self._to_hash.append(data)

    async def flush(self) -> None:
        """Queue what was written so far for hashing and the disk."""
        pieces, self._to_hash = self._to_hash, []
        data = self._out.take()
        if pieces or data:
            await self._lane.run(self._hash_and_store, pieces, data)

    async def finish(self) -> None:
        """Seal the final age chunk and write everything out (not yet durable)."""
        if not self.finished:
            self._enc.close()
            await self.flush()
            await self._lane.drain()
            self.finished = True

    def _hash_and_store(self, pieces: list[bytes | memoryview], data: bytearray) -> None:
        # On the upload's thread, one batch after another. After a failed batch the
        # file is abandoned; the batches queued behind it must not write past a gap.
        if self._failed:
            return
        try:
            for piece in pieces:
                self._sha256.update(piece)  # releases the GIL for pieces over 2 KiB
            if data:
                self._store(data)
        except BaseException:
            self._failed = True
            raise

    def _store(self, data: bytearray) -> None:
        self._raw.write(data)
        self._written += len(data)
        if self._written - self._written_back >= _WRITEBACK_EVERY:
            self._raw.flush()
            _start_writeback(self._raw.fileno(), self._written_back, self._written)
            self._written_back = self._written

    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def _sync_and_close(self) -> None:
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()

    def _close_quietly(self) -> None:
        with contextlib.suppress(OSError):
            self._raw.close()


def _start_writeback(fd: int, start: int, end: int) -> None:
    """Have the kernel start writing the file's new pages to disk (in the writer
    thread: starting writeback can itself wait for the disk queue), rather than
    fdatasync, which waits for all of it: the final fsync then has only the tail
    left, and a large upload never piles up a gigabyte of dirty pages. On Linux,
    POSIX_FADV_DONTNEED starts writeback of the dirty pages in the range and drops
    the clean ones; the range reaches back one step, so the pages sent last time
    leave the page cache once written (pages still being written stay; the server
    never reads ciphertext back soon). Without posix_fadvise (not Linux), the final
    fsync writes everything."""
    if hasattr(os, "posix_fadvise"):
        start = max(0, start - _WRITEBACK_EVERY)
        os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)


class Transaction:
    """The files of one submission, committed together or not at all."""

    def __init__(self, storage: Storage, recipients: Sequence[Any], day: _dt.date) -> None:
        self._storage = storage
        self._recipients = list(recipients)
        self.day = day
        self.files: list[PendingFile] = []
        self._moved: list[str] = []
        self._reserved = 0
        self._since_check = 0
        self._lane = _Lane()
        self._done = False
        storage._track(self)

    def _account(self, n: int) -> None:
        # The quota is shared by every upload in flight. This runs on the event loop
        # (the encryptor writes there), as does every change to the storage's
        # counters, so the check and the reservation are one step without a lock.
        s = self._storage
        if s.used_bytes + s.reserved_bytes + n > s.config.disk_quota_bytes:
            raise QuotaExceeded("disk quota reached")
        s.reserved_bytes += n
        self._reserved += n
        self._since_check += n
        if self._since_check >= _FREE_SPACE_CHECK_EVERY:
            self._since_check = 0
            s.check_free_space()

    def new_file(self, kind: str) -> PendingFile:
        file_id = new_id()
        raw = _fs.safe_create_exclusive(self._storage.incoming_dir, f"{file_id}.age")
        out = _Sealed(self._account)
        try:
            enc = Encryptor(out, self._recipients)
        except BaseException:
            raw.close()
            _fs.safe_unlink(self._storage.incoming_dir, f"{file_id}.age")
            raise
        pending = PendingFile(id=file_id, kind=kind, _raw=raw, _out=out, _enc=enc,
                              _lane=self._lane)
        self.files.append(pending)
        return pending

    async def commit(self, *, submission_id: str, desks: Sequence[str], source_id: str,
                     reply_recipient: str, kind: str = "report") -> None:
        """Make every file durable in store/, then commit the rows. Then it is received."""
        for f in self.files:
            await f.finish()
        await self._lane.run(self._make_durable)
        await self._lane.drain()
        self._lane.close()
        self._storage._untrack(self)
        self._storage.insert_submission(
            submission_id=submission_id, day=self.day, desks=desks, source_id=source_id,
            reply_recipient=reply_recipient, files=self.files, kind=kind)
        # Committed: from here on, abort() must never delete these files.
        self._done = True
        self._storage.used_bytes += self._reserved
        self._release()

    def _make_durable(self) -> None:
        s = self._storage
        for f in self.files:
            f._sync_and_close()
            _fs.safe_set_day(_fs.safe_join(s.incoming_dir, f.name), self.day)
        for f in self.files:
            _fs.safe_rename_durable(s.incoming_dir, s.store_dir, f.name)
            self._moved.append(f.name)
        _fs.safe_set_day(s.store_dir, self.day)
        _fs.safe_set_day(s.incoming_dir, self.day)

    def _release(self) -> None:
        self._storage.reserved_bytes -= self._reserved
        self._reserved = 0

    def abort(self) -> None:
        """Delete every file of this transaction, wherever it got to.

        Batches still queued on the upload's thread are cancelled; if one is running
        there (the task that queued it failed or was cancelled), the deleting waits
        until it has ended, so that no file is closed and deleted under it."""
        if self._done:
            return
        self._done = True
        self._lane.abandon(self._discard)

    def _discard(self) -> None:
        s = self._storage
        try:
            for f in self.files:
                f._close_quietly()
                _fs.safe_unlink(s.incoming_dir, f.name)
            for name in self._moved:
                _fs.safe_unlink(s.store_dir, name)
            self._release()
            # Creating and deleting entries dated the directories to the second.
            for d in (s.incoming_dir, s.store_dir):
                _fs.safe_set_day(d, self.day)
        finally:
            # Whatever is left is removed at the next start (open()).
            s._untrack(self)


class Storage:
    """The data directory: incoming/, store/ and intake.db."""

    def __init__(self, config: Config,
                 free_space: Callable[[Path], int] | None = None) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.incoming_dir = config.incoming_dir
        self.store_dir = config.store_dir
        self.used_bytes = 0
        # Both only ever change on the event loop.
        self.reserved_bytes = 0
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
            _fs.safe_mkdir(d)
        if serving:
            self._lock_fd = _fs.lock_exclusive(self.data_dir / ".server.lock")
            if self._lock_fd is None:
                raise StorageError(
                    f"another intake-server is already serving {self.data_dir}")
        conn = sqlite3.connect(self.config.db_path, isolation_level=None,
                               check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed row survives a power cut, so "received" means received.
        db.execute("PRAGMA synchronous=FULL")
        # Deleted rows are overwritten with zeros, not left in free pages.
        db.execute("PRAGMA secure_delete=ON")
        db.execute("PRAGMA foreign_keys=ON")
        self._db = db
        self._create_schema()
        if serving:
            self.remove_orphans()
        row = db.execute("SELECT COALESCE(SUM(ciphertext_size), 0) FROM files").fetchone()
        self.used_bytes = int(row[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.conn.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    @property
    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            raise StorageError("storage is not open")
        return self._db

    def _create_schema(self) -> None:
        db = self.db
        if "submissions" not in db.table_names():
            db.execute("CREATE TABLE submissions (id TEXT PRIMARY KEY, day TEXT,"
                       " source_id TEXT, reply_recipient TEXT,"
                       " type TEXT NOT NULL DEFAULT 'report'"
                       " CHECK (type IN ('report', 'followup')))")
        elif "type" not in db["submissions"].columns_dict:
            # A data dir from before follow-ups existed: everything in it is a report.
            db.execute("ALTER TABLE submissions ADD COLUMN type TEXT NOT NULL"
                       " DEFAULT 'report' CHECK (type IN ('report', 'followup'))")
        if "submission_desks" not in db.table_names():
            db["submission_desks"].create(
                {"submission_id": str, "desk_id": str}, pk=("submission_id", "desk_id"),
                foreign_keys=[("submission_id", "submissions", "id")])
        if "files" not in db.table_names():
            db["files"].create(
                {"id": str, "submission_id": str, "kind": str, "ciphertext_size": int},
                pk="id", foreign_keys=[("submission_id", "submissions", "id")])
            db["files"].create_index(["submission_id"])
        if "sources" not in db.table_names():
            db.execute("CREATE TABLE sources (source_id TEXT PRIMARY KEY,"
                       " reply_recipient TEXT NOT NULL, last_seen_day TEXT NOT NULL)")
            # Sources of a data dir from before this table existed.
            db.execute("INSERT OR IGNORE INTO sources (source_id, reply_recipient, last_seen_day)"
                       " SELECT source_id, reply_recipient, MAX(day) FROM submissions"
                       " GROUP BY source_id")
        if "source_desks" not in db.table_names():
            db.execute("CREATE TABLE source_desks (source_id TEXT NOT NULL"
                       " REFERENCES sources (source_id) ON DELETE CASCADE,"
                       " desk_id TEXT NOT NULL, PRIMARY KEY (source_id, desk_id))")
            db.execute("INSERT OR IGNORE INTO source_desks (source_id, desk_id)"
                       " SELECT s.source_id, d.desk_id FROM submissions s"
                       " JOIN submission_desks d ON d.submission_id = s.id")

    def remove_orphans(self) -> int:
        """Delete what a crash left behind: all of incoming/, unreferenced store/ files."""
        removed = 0
        for name in list(_fs.list_names(self.incoming_dir)):
            _fs.safe_unlink(self.incoming_dir, name)
            removed += 1
        known = {f"{r[0]}.age" for r in self.db.execute("SELECT id FROM files").fetchall()}
        for name in list(_fs.list_names(self.store_dir)):
            if name not in known:
                _fs.safe_unlink(self.store_dir, name)
                removed += 1
        for d in (self.incoming_dir, self.store_dir):
            _fs.safe_set_day(d, utc_today())
        if removed:
            _fs.fsync_dir(self.incoming_dir)
            _fs.fsync_dir(self.store_dir)
            log.warning("removed %d orphaned file(s) left by an interrupted upload", removed)
        return removed

    # -- writing -----------------------------------------------------------

    def check_free_space(self) -> None:
        if self._free_space(self.data_dir) < self.config.min_free_bytes:
            raise DiskFull("free space below the configured floor")

    def check_quota(self) -> None:
        if self.used_bytes + self.reserved_bytes >= self.config.disk_quota_bytes:
            raise QuotaExceeded("disk quota reached")

    def begin(self, recipients: Sequence[Any], day: _dt.date | None = None) -> Transaction:
        self.check_quota()
        self.check_free_space()
        return Transaction(self, recipients, day or utc_today())

    def insert_submission(self, *, submission_id: str, day: _dt.date, desks: Sequence[str],
                          source_id: str, reply_recipient: str,
                          files: Sequence[PendingFile], kind: str = "report") -> None:
        if kind not in ("report", "followup"):
            raise ValueError("kind must be report or followup")
        conn = self.db.conn
        # Plain SQL in one explicit transaction: sqlite-utils' insert() would commit
        # each table on its own, and a crash in between would half-record the report.
        with immediate_transaction(conn):
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
            conn.executemany("INSERT INTO files (id, submission_id, kind, ciphertext_size) "
                             "VALUES (?, ?, ?, ?)",
                             [(f.id, submission_id, f.kind, f.ciphertext_size) for f in files])
        self.date_db_files(day)

    def date_db_files(self, day: _dt.date) -> None:
        """Set the database files' mtimes to the day: they would date the last write.

        Runs after a commit, so it must not fail the request: the report is already
        received (a file the checkpoint just removed is simply skipped)."""
        paths = [Path(f"{self.config.db_path}{s}") for s in ("", "-wal", "-shm")]
        for path in [*paths, self.data_dir]:
            try:
                _fs.safe_set_day(path, day)
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
        self.db.execute("UPDATE sources SET last_seen_day = ? WHERE source_id = ?",
                        (day.isoformat(), source_id))
        self.date_db_files(day)

    def source_desks(self, source_id: str) -> list[str]:
        rows = self.db.execute("SELECT desk_id FROM source_desks WHERE source_id = ?"
                               " ORDER BY rowid", (source_id,)).fetchall()
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
        return _fs.safe_join(self.store_dir, f"{file_id}.age")


def _statvfs_free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
