"""A disk that runs out of space is DiskFull, and the source gets the 503 page (item 15).

With the free-space floor at 0 (or a file system that fills under it), ENOSPC arrived
as a plain OSError from a write, a flush or an fsync, or as SQLite's "database or disk
is full" on COMMIT, and the source saw the generic 500 page, without "Nothing was
kept". Here each path of the storage fails in turn: the errno is injected at the one
call that would meet the full disk (the real full disk is in
tests/integration/test_full_disk.py), and SQLite's own SQLITE_FULL is real (a
``max_page_count`` the database has reached).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import sqlite3
from typing import Any

import pytest
from aiohttp import web

from intake_server.app import create_app
from intake_server.state import STORAGE
from intake_server.storage import DiskFull, Storage, is_out_of_space
from keys import fs
from keys.age import parse_recipient
from support.intake import (
    LANGS,
    assert_nothing_stored,
    base_fields,
    eventually,
    form,
    get_csrf,
    make_install,
)

OUT_OF_SPACE = [errno.ENOSPC, errno.EDQUOT]
DAY = dt.date(2026, 3, 14)

# What the source must read on the 503 page, in each language.
NOTHING_KEPT = {"en": "Nothing was kept.", "ar": "لم يُحفظ أي شيء.",
                "fr": "Rien n'a été conservé."}
TITLE_503 = {"en": "Reports cannot be accepted right now",
             "ar": "لا يمكن قبول البلاغات الآن",
             "fr": "Les signalements ne peuvent pas être acceptés pour le moment"}


class _FailingFile:
    """A file as fs.create_exclusive returns it, whose ``op`` fails with ``code``."""

    def __init__(self, raw: Any, op: str, code: int) -> None:
        self._raw, self._op, self._code = raw, op, code

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._raw, name)
        if name != self._op:
            return attr

        def failing(*args: Any, **kwargs: Any) -> Any:
            raise OSError(self._code, os.strerror(self._code))
        return failing


def _inject(monkeypatch: pytest.MonkeyPatch, path: str, code: int) -> None:
    """Make the storage meet a full disk at ``path``."""
    def oserror(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    if path == "create":
        monkeypatch.setattr(fs, "create_exclusive", oserror)
    elif path in ("write", "flush"):
        real = fs.create_exclusive
        monkeypatch.setattr(fs, "create_exclusive",
                            lambda *a, **k: _FailingFile(real(*a, **k), path, code))
    elif path == "fsync":
        monkeypatch.setattr(os, "fsync", oserror)
    elif path == "rename":
        monkeypatch.setattr(fs, "move_durable", oserror)
    else:
        raise AssertionError(path)


def _fill_database(storage: Storage) -> None:
    """Let SQLite grow no more: the next insert that needs a page gets SQLITE_FULL."""
    pages = storage.db.execute("PRAGMA page_count").fetchone()[0]
    storage.db.execute(f"PRAGMA max_page_count = {pages}")
    # Fill the pages there are, with rows no larger than a submission's, so that the
    # submission's rows need a new one.
    for i in range(10_000):
        try:
            storage.db.execute("INSERT INTO sources (source_id, reply_recipient, "
                               "last_seen_day) VALUES (?, ?, ?)",
                               (f"{i:032x}", "age1x", DAY.isoformat()))
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode != sqlite3.SQLITE_FULL:
                raise
            return
    raise AssertionError("the database never filled")


@pytest.fixture
def storage(tmp_path):
    inst = make_install(tmp_path)
    s = Storage(inst.config)
    s.open()
    yield inst, s
    s.close()


# Every call of a submission's storage that can meet a full disk, with each errno;
# SQLite's COMMIT says SQLITE_FULL whatever the errno below it.
PATHS = [(path, code) for path in ("create", "write", "flush", "fsync", "rename")
         for code in OUT_OF_SPACE] + [("commit", errno.ENOSPC)]


@pytest.mark.parametrize(("path", "code"), PATHS,
                         ids=[f"{p}-{errno.errorcode[c]}" for p, c in PATHS])
async def test_every_out_of_space_path_is_disk_full_and_leaves_nothing(
        storage, monkeypatch, path, code) -> None:
    inst, s = storage
    if path == "commit":
        _fill_database(s)
    else:
        _inject(monkeypatch, path, code)
    txn = s.begin([parse_recipient(d.recipient) for d in inst.keyring.desks], day=DAY)

    async def submission() -> None:
        try:
            f = txn.new_file("attachment")
            f.write(os.urandom(3 * 1024 * 1024))  # several batches for the upload's thread
            await f.flush()
            await f.finish()
            await txn.commit(submission_id="a" * 32, desks=["triage"], source_id="b" * 32,
                             reply_recipient="age1x")
        except BaseException:
            txn.abort()
            raise

    with pytest.raises(DiskFull) as raised:
        await submission()
    assert is_out_of_space(raised.value.__cause__)  # the original error is kept as cause
    monkeypatch.undo()
    await eventually(lambda: not inst.incoming_names() and not inst.stored_names())
    assert inst.incoming_names() == []
    assert inst.stored_names() == []
    assert s.reserved_bytes == 0
    assert s.db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0] == 0
    assert s.db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0
    # The connection is not left inside the failed transaction.
    assert not s.db.conn.in_transaction


def test_is_out_of_space_by_code_not_by_text() -> None:
    assert is_out_of_space(OSError(errno.ENOSPC, "x"))
    assert is_out_of_space(OSError(errno.EDQUOT, "x"))
    assert not is_out_of_space(OSError(errno.EIO, "No space left on device"))
    assert not is_out_of_space(ValueError("database or disk is full"))
    full = sqlite3.OperationalError("anything")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    assert is_out_of_space(full)
    other = sqlite3.OperationalError("database or disk is full")
    other.sqlite_errorcode = sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
    assert not is_out_of_space(other)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("path", ["write", "fsync", "commit"])
async def test_a_full_disk_mid_upload_is_the_503_page(
        tmp_path, aiohttp_client, monkeypatch, lang, path) -> None:
    inst = make_install(tmp_path, min_free_bytes=0)
    client = await aiohttp_client(create_app(inst.config))
    csrf = await get_csrf(client, lang)
    if path == "commit":
        _fill_database(client.server.app[STORAGE])
    else:
        _inject(monkeypatch, path, errno.ENOSPC)
    resp = await client.post(f"/{lang}/submit",
                             data=form(base_fields(csrf), [("a.bin", os.urandom(3_000_000))]))
    assert resp.status == 503
    html = await resp.text()
    assert TITLE_503[lang] in html
    assert NOTHING_KEPT[lang] in html
    assert f'<html lang="{lang}"' in html
    assert resp.headers["Connection"] == "close"
    monkeypatch.undo()
    await eventually(lambda: not inst.incoming_names())
    if path == "commit":
        assert inst.incoming_names() == []
        assert inst.stored_names() == []
    else:
        assert_nothing_stored(inst)


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    sqlite3.OperationalError("database or disk is full"),
], ids=["ENOSPC", "EDQUOT", "SQLITE_FULL"])
async def test_out_of_space_anywhere_in_a_handler_is_503_not_500(
        tmp_path, aiohttp_client, error, caplog) -> None:
    """The error pages catch what no storage call converted (a login's write, say)."""
    if isinstance(error, sqlite3.Error):
        error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    app = create_app(make_install(tmp_path).config)

    async def full(request: web.Request) -> web.Response:
        raise error

    async def gone(request: web.Request) -> web.Response:
        raise ConnectionResetError("the client went away")

    async def broken(request: web.Request) -> web.Response:
        raise OSError(errno.EIO, "I/O error")

    app.router.add_post("/ar/full", full)
    app.router.add_post("/fr/gone", gone)
    app.router.add_post("/en/broken", broken)
    client = await aiohttp_client(app)
    resp = await client.post("/ar/full", data=b"x")
    assert resp.status == 503
    html = await resp.text()
    assert TITLE_503["ar"] in html
    assert NOTHING_KEPT["ar"] in html
    assert 'dir="rtl"' in html
    assert "internal error" not in caplog.text
    # A client that went away is not a failure of the server: nothing is logged.
    resp = await client.post("/fr/gone", data=b"x")
    assert resp.status == 400
    assert "internal error" not in caplog.text
    assert "ConnectionResetError" not in caplog.text
    # Control: any other OSError is still the 500 page, logged by type.
    resp = await client.post("/en/broken", data=b"x")
    assert resp.status == 500
    assert "internal error: OSError" in caplog.text
