"""The write pipeline: one submission's files, from the event loop to durable
ciphertext in ``store/``, and its rows committed only after that.

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

Every file and directory the pipeline touches is dated to midnight UTC of the
submission's day, never finer: a seized disk must not tell when a report came.

The event loop encrypts; each upload has a lane of its own (a thread) that hashes
the plaintext and writes the ciphertext, in order, so a stalled disk holds up that
upload only.

Space is reserved before anything is written: a transaction begins with the space
its upload declared (``expected``) held against the quota and the free-space floor,
so that concurrent uploads cannot each pass a check for themselves and overshoot
together. As ciphertext is sealed (on the event loop, before any of it reaches the
disk) it is counted against that reservation; beyond it, byte by byte against the
quota. Free space is read again every _FREE_SPACE_CHECK_EVERY bytes, in case
something else fills the disk.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as _dt
import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from intake_server.config import FREE_SPACE_CHECK_BYTES, Config
from keys import fs, ids
from keys.age import Encryptor

from .errors import QuotaExceeded, disk_full_on_error

__all__ = ["BATCHES_AHEAD", "WRITE_BATCH", "PendingFile", "Transaction", "new_id",
           "utc_today"]

# Check free space every this many bytes written, not on every chunk (config.py
# requires a floor of at least this much per upload slot).
_FREE_SPACE_CHECK_EVERY = FREE_SPACE_CHECK_BYTES
# Start writing a file's ciphertext out to disk every this many bytes.
_WRITEBACK_EVERY = 8 * 1024 * 1024
# Hand an upload's ciphertext to its thread in batches of at least this much:
# one thread hand-off per batch, not per piece.
WRITE_BATCH = 1024 * 1024
# Batches an upload may have queued or running on its thread before the event loop
# waits for the oldest: two keep both sides busy through the bumps of either.
BATCHES_AHEAD = 2


class _Digest(Protocol):
    """What PendingFile needs of hashlib's SHA-256."""

    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Owner(Protocol):
    """What a Transaction needs of the storage that began it (``Storage``): its
    directories, the shared quota counters, and where the rows go."""

    config: Config
    incoming_dir: Path
    store_dir: Path
    used_bytes: int
    reserved_bytes: int
    pending_bytes: int

    def check_free_space(self, more: int = ...) -> None: ...

    def insert_submission(self, *, submission_id: str, day: _dt.date, desks: Sequence[str],
                          source_id: str, reply_recipient: str,
                          files: Sequence[PendingFile], kind: str = ...) -> None: ...

    def _track(self, txn: Transaction) -> None: ...

    def _untrack(self, txn: Transaction) -> None: ...


def new_id() -> str:
    """A random identifier: 128 bits from the OS CSPRNG, hex (keys.ids' 32-hex id)."""
    return ids.new_hex_id()


def utc_today() -> _dt.date:
    """Today in UTC: the day a submission is dated to, the finest time stored."""
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
            # Every write, flush, fsync and rename runs here: a full disk is DiskFull.
            with disk_full_on_error():
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
    _enc: Encryptor
    _lane: _Lane
    plaintext_size: int = 0
    _written: int = 0
    _written_back: int = 0
    _to_hash: list[bytes | memoryview] = field(default_factory=list)
    _sha256: _Digest = field(default_factory=hashlib.sha256)
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

    def __init__(self, storage: _Owner, recipients: Sequence[Any], day: _dt.date, *,
                 expected: int = 0) -> None:
        """``expected``: ciphertext bytes to hold for this transaction from the start
        (Storage.begin checked that they fit)."""
        self._storage = storage
        self._recipients = list(recipients)
        self.day = day
        self.files: list[PendingFile] = []
        self._moved: list[str] = []
        self._expected = expected
        # Held against the quota: max(expected, sealed). Sealed: ciphertext counted.
        self._reserved = expected
        self._sealed = 0
        self._since_check = 0
        self._lane = _Lane()
        self._done = False
        storage.reserved_bytes += expected
        storage.pending_bytes += expected
        storage._track(self)

    def _account(self, n: int) -> None:
        # The quota is shared by every upload in flight. This runs on the event loop
        # (the encryptor writes there), as does every change to the storage's
        # counters, so the check and the reservation are one step without a lock.
        s = self._storage
        within = max(0, min(n, self._expected - self._sealed))
        beyond = n - within
        if beyond:
            if s.used_bytes + s.reserved_bytes + beyond > s.config.disk_quota_bytes:
                raise QuotaExceeded("disk quota reached")
            s.reserved_bytes += beyond
            self._reserved += beyond
        s.pending_bytes -= within
        self._sealed += n
        self._since_check += n
        if self._since_check >= _FREE_SPACE_CHECK_EVERY:
            self._since_check = 0
            s.check_free_space()

    def new_file(self, kind: str) -> PendingFile:
        file_id = new_id()
        with disk_full_on_error():
            raw = fs.create_exclusive(self._storage.incoming_dir, f"{file_id}.age")
        out = _Sealed(self._account)
        try:
            enc = Encryptor(out, self._recipients)
        except BaseException:
            raw.close()
            fs.safe_unlink(self._storage.incoming_dir, f"{file_id}.age")
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
        self._storage.used_bytes += self._sealed
        self._release()

    def _make_durable(self) -> None:
        s = self._storage
        for f in self.files:
            f._sync_and_close()
            fs.set_day(fs.safe_join(s.incoming_dir, f.name), self.day)
        for f in self.files:
            fs.move_durable(fs.safe_join(s.incoming_dir, f.name), s.store_dir, f.name)
            self._moved.append(f.name)
        fs.set_day(s.store_dir, self.day)
        fs.set_day(s.incoming_dir, self.day)

    def _release(self) -> None:
        s = self._storage
        s.reserved_bytes -= self._reserved
        s.pending_bytes -= max(0, self._expected - self._sealed)
        self._reserved = self._expected = 0

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
                fs.safe_unlink(s.incoming_dir, f.name)
            for name in self._moved:
                fs.safe_unlink(s.store_dir, name)
            self._release()
            # Creating and deleting entries dated the directories to the second.
            for d in (s.incoming_dir, s.store_dir):
                fs.set_day(d, self.day)
        finally:
            # Whatever is left is removed at the next start (open()).
            s._untrack(self)
