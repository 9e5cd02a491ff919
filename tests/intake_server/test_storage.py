"""Storage: pragmas, orphan removal at start-up, abort leaves nothing, day-only times."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import sqlite3
import threading

import pytest

from intake_server.storage import (
    DiskFull,
    PendingFile,
    QuotaExceeded,
    Storage,
    immediate_transaction,
)
from intake_server.storage import pipeline as storage_module
from keys import fs
from keys.age import decrypt, parse_recipient
from support.intake import base_fields, eventually, form, get_csrf, make_install


@pytest.fixture
def storage(tmp_path):
    inst = make_install(tmp_path)
    s = Storage(inst.config)
    s.open()
    yield inst, s
    s.close()


def begin(storage):
    """A transaction to every desk of the install, on a fixed day."""
    inst, s = storage
    return s.begin([parse_recipient(d.recipient) for d in inst.keyring.desks],
                   day=dt.date(2026, 3, 14))


@pytest.fixture
def stalled_writes(monkeypatch) -> threading.Event:
    """Every ciphertext write waits in its thread until the returned event is set."""
    release = threading.Event()
    real_store = PendingFile._store

    def stalled(self: PendingFile, data: bytearray) -> None:
        release.wait(10)
        real_store(self, data)

    monkeypatch.setattr(PendingFile, "_store", stalled)
    return release


def test_is_open_from_open_until_close(tmp_path) -> None:
    s = Storage(make_install(tmp_path).config)
    assert s.is_open is False
    s.open()
    assert s.is_open is True
    s.close()
    assert s.is_open is False


def test_pragmas(storage) -> None:
    _, s = storage
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_layout_is_private(storage) -> None:
    inst, _ = storage
    for d in (inst.data_dir, inst.config.incoming_dir, inst.config.store_dir):
        assert d.stat().st_mode & 0o777 == 0o700


async def test_commit_then_reopen(storage) -> None:
    inst, s = storage
    day = dt.date(2026, 3, 14)
    txn = s.begin([parse_recipient(d.recipient) for d in inst.keyring.desks], day=day)
    f = txn.new_file("attachment")
    f.write(b"hello" * 100_000)
    await txn.commit(submission_id="a" * 32, desks=["triage", "forensics"],
                     source_id="b" * 64, reply_recipient="age1x")
    path = s.store_path(f.id)
    assert decrypt(path.read_bytes(), [inst.identities["forensics"]]) == b"hello" * 100_000
    assert os.stat(path).st_mtime == fs.day_timestamp(day)
    assert os.stat(inst.config.db_path).st_mtime == fs.day_timestamp(day)
    assert s.files_of("a" * 32)[0]["ciphertext_size"] == path.stat().st_size
    assert sorted(s.desks_of("a" * 32)) == ["forensics", "triage"]
    assert s.submissions()[0]["day"] == "2026-03-14"
    used = s.used_bytes
    s.close()
    s.open()
    assert s.used_bytes == used
    assert s.store_path(f.id).exists()


async def test_large_file_is_written_back_as_it_streams(storage, monkeypatch) -> None:
    """Past every _WRITEBACK_EVERY bytes the kernel is asked to start writeback (and
    to drop the clean pages behind it), from the writer thread; the file still
    decrypts to what was sent and the hash covers every byte."""
    inst, s = storage
    calls: list[tuple[int, int]] = []
    threads: set[int] = set()
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        calls.append((offset, length))
        threads.add(threading.get_ident())
        real(fd, offset, length, advice)

    monkeypatch.setattr(storage_module, "_WRITEBACK_EVERY", 1024 * 1024)
    monkeypatch.setattr(storage_module.os, "posix_fadvise", spy)
    piece = os.urandom(256 * 1024)
    txn = begin(storage)
    f = txn.new_file("attachment")
    for _ in range(20):
        f.write(piece)
        if f.unwritten >= storage_module.WRITE_BATCH:
            await f.flush()
    await txn.commit(submission_id="c" * 32, desks=["triage"], source_id="d" * 64,
                     reply_recipient="age1x")
    mib = 1024 * 1024
    ends = [offset + length for offset, length in calls]
    assert len(calls) == 4  # 5 MiB of ciphertext: past 1, 2, 3 and 4 MiB
    assert all(mib * (i + 1) <= end < mib * (i + 2) for i, end in enumerate(ends))
    # Each call reaches back one step, so the pages sent last time are dropped too.
    assert [offset for offset, _ in calls] == [0] + [max(0, e - mib) for e in ends[:-1]]
    assert threading.get_ident() not in threads
    plain = decrypt(s.store_path(f.id).read_bytes(), [inst.identities["triage"]])
    assert plain == piece * 20
    assert f.sha256() == hashlib.sha256(piece * 20).hexdigest()


async def test_a_stalled_disk_holds_up_the_upload_not_the_event_loop(
    storage, stalled_writes
) -> None:
    inst, s = storage
    release = stalled_writes
    txn = begin(storage)
    f = txn.new_file("attachment")
    batches = [bytes([ord("a") + i]) * storage_module.WRITE_BATCH
               for i in range(storage_module.BATCHES_AHEAD + 1)]
    for batch in batches[:-1]:
        f.write(batch)
        await f.flush()  # returns at once: queued behind the stalled write
    f.write(batches[-1])
    blocked = asyncio.ensure_future(f.flush())  # one too many: waits for the oldest
    await asyncio.sleep(0.05)  # the loop runs meanwhile
    assert not blocked.done()
    release.set()
    await blocked
    await txn.commit(submission_id="e" * 32, desks=["triage"], source_id="f" * 64,
                     reply_recipient="age1x")
    plain = decrypt(s.store_path(f.id).read_bytes(), [inst.identities["triage"]])
    assert plain == b"".join(batches)  # in order
    assert f.sha256() == hashlib.sha256(plain).hexdigest()


async def test_a_failed_write_stops_the_batches_behind_it(storage, monkeypatch) -> None:
    """Once a batch fails to reach the disk, the batches queued behind it must not be
    written after the gap; the error comes out of finish(), and abort() deletes."""
    inst, s = storage
    calls: list[int] = []

    def failing(self: PendingFile, data: bytearray) -> None:
        calls.append(len(data))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PendingFile, "_store", failing)
    txn = begin(storage)
    f = txn.new_file("attachment")
    for _ in range(storage_module.BATCHES_AHEAD):
        f.write(b"x" * storage_module.WRITE_BATCH)
        await f.flush()
    with pytest.raises(DiskFull) as raised:  # ENOSPC is the storage's DiskFull
        await f.finish()
    assert isinstance(raised.value.__cause__, OSError)
    txn.abort()  # deletes once the batches still queued have been skipped
    await eventually(lambda: not inst.incoming_names())
    assert len(calls) == 1
    assert inst.incoming_names() == []
    assert s.reserved_bytes == 0


async def test_abort_cancels_queued_batches_and_waits_for_the_running_one(
    storage, stalled_writes, monkeypatch
) -> None:
    """Abort during a stalled write: the batches queued behind it never run, the
    file is deleted once the running write ends, the thread ends, and the storage's
    shutdown wait (uploads_ended) sees all of it."""
    inst, s = storage
    release = stalled_writes
    stalled_store = PendingFile._store
    calls: list[int] = []

    def counted(self: PendingFile, data: bytearray) -> None:
        calls.append(len(data))
        stalled_store(self, data)

    monkeypatch.setattr(PendingFile, "_store", counted)
    threads_before = _upload_threads()
    txn = begin(storage)
    f = txn.new_file("attachment")
    for _ in range(storage_module.BATCHES_AHEAD):
        f.write(b"q" * storage_module.WRITE_BATCH)
        await f.flush()
    await asyncio.sleep(0.05)  # the first batch is running (stalled), the rest queued
    txn.abort()
    ended = asyncio.ensure_future(s.uploads_ended(timeout=10))
    await asyncio.sleep(0.05)
    assert not ended.done()
    assert inst.incoming_names() == [f.name]  # not deleted under the writer
    release.set()
    assert await ended is True
    assert inst.incoming_names() == []
    assert s.reserved_bytes == 0
    assert len(calls) == 1  # the batch queued behind the stalled one never ran
    await eventually(lambda: _upload_threads() == threads_before)
    assert _upload_threads() == threads_before


async def test_uploads_ended_gives_up_after_its_timeout(storage, stalled_writes) -> None:
    inst, s = storage
    txn = begin(storage)
    f = txn.new_file("attachment")
    f.write(b"r" * storage_module.WRITE_BATCH)
    await f.flush()
    txn.abort()
    assert await s.uploads_ended(timeout=0.1) is False
    stalled_writes.set()
    assert await s.uploads_ended(timeout=10) is True
    assert inst.incoming_names() == []


async def test_server_shutdown_deletes_an_upload_whose_write_was_stalled(
    tmp_path, stalled_writes
) -> None:
    """The server stops (its handlers are cancelled) while an upload's write hangs
    on the disk: the app's cleanup waits for the upload's thread, so its file is
    deleted before the server has closed, not left for the next start."""
    from aiohttp.test_utils import TestClient, TestServer

    from intake_server.app import create_app

    inst = make_install(tmp_path)
    client = TestClient(TestServer(create_app(inst.config)))
    await client.start_server()
    threading.Timer(0.5, stalled_writes.set).start()  # the disk comes back later
    try:
        csrf = await get_csrf(client)
        body = form(base_fields(csrf), [("s.bin", b"s" * (3 * storage_module.WRITE_BATCH))])
        post = asyncio.ensure_future(client.post("/en/submit", data=body))
        await eventually(lambda: inst.incoming_names())
        await asyncio.sleep(0.1)  # the first batch's write is stalled in its thread
        assert not stalled_writes.is_set()
        assert inst.incoming_names()
    finally:
        await client.close()  # cancels the upload, runs the app's cleanup
    post.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await post  # its connection was closed under it
    assert stalled_writes.is_set()  # the cleanup waited for the disk
    assert inst.incoming_names() == []
    assert inst.stored_names() == []


def _upload_threads() -> int:
    return sum(t.name.startswith("amana-upload") for t in threading.enumerate())


async def test_an_upload_thread_ends_with_its_transaction(storage) -> None:
    before = _upload_threads()
    for finish in ("commit", "abort"):
        txn = begin(storage)
        f = txn.new_file("attachment")
        f.write(b"y" * storage_module.WRITE_BATCH)
        await f.flush()
        assert _upload_threads() == before + 1
        if finish == "commit":
            await txn.commit(submission_id=finish[0] * 32, desks=["triage"],
                             source_id="f" * 64, reply_recipient="age1x")
        else:
            await f.finish()
            txn.abort()
        await eventually(lambda: _upload_threads() == before)
        assert _upload_threads() == before


async def test_abort_after_a_cancelled_write_waits_for_the_writer(
    storage, stalled_writes
) -> None:
    """A task cancelled while its write is still running in a thread (at shutdown,
    say): abort() must not close and delete the file under the writer, and must
    still delete it once the writer is done."""
    inst, s = storage
    release = stalled_writes
    txn = begin(storage)
    f = txn.new_file("attachment")
    f.write(b"a" * storage_module.WRITE_BATCH)
    await f.flush()
    task = asyncio.ensure_future(f.finish())  # waits for the stalled write
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    txn.abort()
    assert inst.incoming_names() == [f.name]  # not deleted under the writer
    assert s.reserved_bytes > 0
    release.set()
    await eventually(lambda: not inst.incoming_names())
    assert inst.incoming_names() == []
    assert s.reserved_bytes == 0


def test_abort_deletes_everything(storage) -> None:
    inst, s = storage
    txn = s.begin([parse_recipient(inst.keyring.desks[0].recipient)])
    f = txn.new_file("attachment")
    f.write(b"x" * 200_000)
    assert inst.incoming_names()
    txn.abort()
    assert inst.incoming_names() == []
    assert inst.stored_names() == []
    assert s.reserved_bytes == 0


def test_quota_is_enforced_while_writing(tmp_path) -> None:
    inst = make_install(tmp_path, disk_quota_bytes=150_000)
    s = Storage(inst.config)
    s.open()
    txn = s.begin([parse_recipient(inst.keyring.desks[0].recipient)])
    f = txn.new_file("attachment")
    f.write(b"q" * 65536)  # the encryptor holds one chunk; the next write flushes it
    with pytest.raises(QuotaExceeded):
        f.write(b"q" * 200_000)
    txn.abort()
    assert inst.incoming_names() == []
    s.close()


def test_start_up_removes_orphans(storage) -> None:
    inst, s = storage
    s.close()
    # What a crash can leave: a half-written upload, and a renamed file whose row
    # was never committed. A committed file must survive.
    (inst.config.incoming_dir / "0123abcd.age").write_bytes(b"age-encryption.org/v1\npartial")
    (inst.config.store_dir / "feedbeef.age").write_bytes(b"unreferenced")
    s.open()
    assert inst.incoming_names() == []
    assert inst.stored_names() == []


def test_a_failed_commit_is_rolled_back(tmp_path) -> None:
    """If COMMIT fails (disk full, I/O error), the connection must not be left inside
    the transaction: the server shares it, and every later BEGIN would fail."""
    real = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    real.execute("CREATE TABLE t (x)")

    class CommitFails:
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            if sql == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *args)

    with pytest.raises(sqlite3.OperationalError, match="disk is full"), \
            immediate_transaction(CommitFails()) as conn:  # type: ignore[arg-type]
        conn.execute("INSERT INTO t VALUES (1)")
    assert not real.in_transaction
    with immediate_transaction(real):
        real.execute("INSERT INTO t VALUES (2)")
    assert real.execute("SELECT x FROM t").fetchall() == [(2,)]


async def test_reservations_share_the_free_space_above_the_floor(tmp_path) -> None:
    # Uploads in flight hold what they declared against the floor: a second one that
    # would take the disk below it is refused at begin(), before it writes; the space
    # comes back when the first ends, and what it wrote is no longer counted twice.
    mib = 1024 * 1024
    floor = 64 * mib
    free = {"bytes": floor + 10 * mib}
    inst = make_install(tmp_path, min_free_bytes=floor)
    s = Storage(inst.config, free_space=lambda _: free["bytes"])
    s.open()
    recipients = [parse_recipient(inst.keyring.desks[0].recipient)]
    first = s.begin(recipients, expected=6 * mib)
    assert s.pending_bytes == 6 * mib
    with pytest.raises(DiskFull):
        s.begin(recipients, expected=6 * mib)
    s.begin(recipients, expected=3 * mib).abort()  # what is left above the floor fits
    f = first.new_file("attachment")
    f.write(b"d" * (2 * mib))
    await f.finish()
    # Written ciphertext no longer counts as pending (the disk shows it).
    assert s.pending_bytes <= 4 * mib
    first.abort()
    await eventually(lambda: not s._live)  # noqa: SLF001
    assert s.pending_bytes == 0
    assert s.reserved_bytes == 0
    s.begin(recipients, expected=6 * mib).abort()
    s.close()


def test_reservations_share_the_quota(tmp_path) -> None:
    inst = make_install(tmp_path, disk_quota_bytes=10_000_000)
    s = Storage(inst.config)
    s.open()
    recipients = [parse_recipient(inst.keyring.desks[0].recipient)]
    first = s.begin(recipients, expected=6_000_000)
    with pytest.raises(QuotaExceeded):
        s.begin(recipients, expected=6_000_000)
    second = s.begin(recipients, expected=4_000_000)  # exactly the rest
    # Beyond its reservation, an upload is held to the quota byte by byte.
    f = second.new_file("attachment")
    f.write(b"z" * 3_900_000)  # within its reservation
    with pytest.raises(QuotaExceeded):
        f.write(b"z" * 300_000)
    second.abort()
    first.abort()
    s.close()
