"""Staff-side state on top of the intake storage: export order, acks, transfer keys,
replies for sources, and retention.

The tables are made and migrated with all the others, by ``Storage.open()``: see
intake_server/storage/schema.py, which describes each (``export_seq``, ``acks``,
``transfer_keys``, ``replies``, ``applied_bundles``). This module only reads and writes
their rows, and the files in ``replies/``, ``outgoing/`` and ``staff-incoming/``.

Only UTC days are stored, never a time of day.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intake_server.storage import (
    DiskFull,
    Storage,
    immediate_transaction,
    nested_transaction,
    new_id,
    utc_today,
)
from keys import fs
from keys.age import parse_recipient
from keys.bundle import MAX_FILES
from keys.ids import is_desk_id, is_hex_id
from keys.signing import VerifyKey

__all__ = ["DeskStatement", "ExportItem", "StaffStore", "StaffStoreError"]

log = logging.getLogger("intake_server.staff")

# One export bundle carries at most this much ciphertext, unless a single submission
# is larger by itself: a desk far behind then fetches several bundles, each small
# enough to resume over Tor and to carry on a USB stick, rather than one enormous one.
# The transfer machine refuses bundles above its own, larger, limit (journalist_client
# journalist_client.online.fetch.DEFAULT_MAX_BUNDLE_BYTES).
EXPORT_MAX_BYTES = 1024 * 1024 * 1024
# ... and at most this many submissions (and MAX_FILES files, index.json included).
EXPORT_MAX_ITEMS = 500

# A cached export bundle in outgoing/: <desk>-<after>-<upto>.bundle. The cache keeps ONE
# bundle per desk, the last one built: enough for a dropped download to resume byte for
# byte, and a bound a stolen transfer credential cannot push (asking for every cursor
# value in turn used to cache a full bundle for each). Its bytes count in the disk quota.
_CACHE_SUFFIX = re.compile(r"-(0|[1-9][0-9]{0,17})-(0|[1-9][0-9]{0,17})\.bundle")
# What a bundle adds to its ciphertext: index.json and the manifest, with room to spare.
_BUNDLE_OVERHEAD = 64 * 1024
_BUNDLE_OVERHEAD_PER_FILE = 1024


# How many ids a statement lists (docs/transfer-format.md, ``before_cursor`` and
# ``deleted_unacknowledged``): enough for months of a desk that never pushes its acks,
# small enough (about 350 KB) for index.json beside 500 items.
STATEMENT_MAX_IDS = 5000


class StaffStoreError(ValueError):
    """A request names something that does not exist or is not allowed."""


@dataclass(frozen=True)
class ExportItem:
    seq: int
    id: str
    day: str
    report_file: str
    attachment_files: tuple[str, ...]
    # "report" or "followup" (submissions.type); index.json carries it to the desk.
    type: str = "report"


@dataclass(frozen=True)
class DeskStatement:
    """What the server holds for a desk when it builds an export: signed in index.json so
    that the air-gapped client can check that nothing was kept from it (ADR 0007).

    ``before_cursor`` are the ids of the desk's unacknowledged submissions at or before
    the cursor the export was asked for (oldest first, at most STATEMENT_MAX_IDS of
    ``before_cursor_count``): the export does not carry them because the cursor says the
    desk has them already. ``deleted`` are (id, received day, deleted day) of submissions
    deleted before the desk acknowledged them, over the last retention period.
    """

    unacknowledged: int
    before_cursor_count: int
    before_cursor: tuple[str, ...]
    deleted: tuple[tuple[str, str, str], ...]


def _stage(write: Callable[[Path], None], name: str, staging: Path, final: Path,
           day: _dt.date) -> int:
    """Have ``write`` write ``staging/name`` (deleted again if it fails), date it to the
    day, and move it durably into ``final``. Returns its size."""
    staged = fs.safe_join(staging, name)
    try:
        write(staged)
    except BaseException:
        fs.safe_unlink(staging, name)
        raise
    fs.set_day(staged, day)
    return fs.move_durable(staged, final, name).stat().st_size

class StaffStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.replies_dir: Path = storage.data_dir / "replies"
        self.outgoing_dir: Path = storage.data_dir / "outgoing"
        self.upload_dir: Path = storage.data_dir / "staff-incoming"
        self.is_open = False

    # -- set-up ------------------------------------------------------------

    def open(self) -> None:
        for d in (self.replies_dir, self.outgoing_dir, self.upload_dir):
            fs.private_dir(d, parents=True)
        serving = self.storage.serving
        # Cached bundles left by the last run count in the quota like any new one. A
        # bundle whose build a crash interrupted is a hidden ".<name>.partial" file
        # (keys.fs.AtomicWriter): the server removes it.
        for name in fs.list_names(self.outgoing_dir):
            path = self.outgoing_dir / name  # a listed entry, not a name from outside
            if fs.NAME_RE.fullmatch(name):
                self.storage.used_bytes += path.stat().st_size
            elif serving:
                fs.safe_remove(path)
        if serving:
            # Half-received bundles from a crash, and the hidden partial files of replies
            # being extracted (keys.fs.AtomicWriter): listed entries, removed by path,
            # since safe_unlink refuses a hidden name and the server would not start.
            for name in list(fs.list_names(self.upload_dir)):
                fs.safe_remove(self.upload_dir / name)
        db = self.storage.db
        if serving:
            # Only the server cleans up: an operator command running beside it would
            # otherwise delete a reply between its move into replies/ and its row.
            known = {f"{r[0]}.age" for r in db.execute("SELECT id FROM replies").fetchall()}
            for name in list(fs.list_names(self.replies_dir)):
                if name not in known:
                    fs.safe_unlink(self.replies_dir, name)
        # Made, listed or cleaned just now: dated to the day like everything else.
        self.date_touched()
        self.is_open = True

    def date_touched(self, paths: Sequence[Path] = ()) -> None:
        """After a staff request, date to the day what it may have touched: the staff
        directories, store/, the database files and the data directory, and ``paths``.

        Every write stamps a time to the second or finer on the file and its directory,
        and, with relatime, so does the first read after one (the atime left at
        midnight is older than the ctime). The source side dates what it writes; this
        is the same for fetches, acks and replies. It runs after the request's work, so
        it must not fail it: a path that has gone meanwhile is skipped.
        """
        today = utc_today()
        dirs = (self.upload_dir, self.replies_dir, self.outgoing_dir, self.storage.store_dir)
        for path in (*dirs, *paths):
            try:
                fs.set_day(path, today)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("could not reset a timestamp to the day: %s", type(exc).__name__)
        self.storage.date_db_files(today)

    # -- transfer credentials ----------------------------------------------

    def add_transfer_key(self, desk: str, key: VerifyKey) -> bool:
        if not is_desk_id(desk):
            raise StaffStoreError("malformed desk id")
        cur = self.storage.db.execute(
            "INSERT OR IGNORE INTO transfer_keys (desk_id, verify_key) VALUES (?, ?)",
            (desk, str(key)),
        )
        return cur.rowcount == 1

    def remove_transfer_key(self, desk: str, key: VerifyKey) -> bool:
        cur = self.storage.db.execute(
            "DELETE FROM transfer_keys WHERE desk_id = ? AND verify_key = ?", (desk, str(key))
        )
        return cur.rowcount == 1

    def transfer_keys(self, desk: str) -> list[VerifyKey]:
        rows = self.storage.db.execute(
            "SELECT verify_key FROM transfer_keys WHERE desk_id = ?", (desk,)
        ).fetchall()
        return [VerifyKey.from_text(r[0]) for r in rows]

    # -- export ------------------------------------------------------------

    def _assign_sequence(self) -> None:
        # Numbers are handed out lazily, at fetch time, by day and then by random id:
        # the database keeps no order of arrival within a day (schema version 3), and
        # these numbers add none. AUTOINCREMENT guarantees each is larger than any
        # number a desk has already seen, so a cursor never skips a later submission.
        self.storage.db.execute(
            "INSERT INTO export_seq (submission_id) SELECT s.id FROM submissions s"
            " WHERE s.id NOT IN (SELECT submission_id FROM export_seq) ORDER BY s.day, s.id"
        )

    def pending(
        self,
        desk: str,
        after: int,
        limit: int = EXPORT_MAX_ITEMS,
        max_files: int = MAX_FILES - 1,
        max_bytes: int | None = None,
    ) -> list[ExportItem]:
        """Submissions for ``desk`` after cursor ``after`` that it has not acknowledged.

        At most ``limit`` items, ``max_files`` files (a bundle holds at most
        MAX_FILES, one of them index.json) and ``max_bytes`` of ciphertext (default
        EXPORT_MAX_BYTES), except that the first item always comes, however large:
        the rest comes with the next fetch.
        """
        if max_bytes is None:
            max_bytes = EXPORT_MAX_BYTES
        self._assign_sequence()
        rows = self.storage.db.execute(
            "SELECT e.seq, s.id, s.day, s.type FROM export_seq e"
            " JOIN submissions s ON s.id = e.submission_id"
            " JOIN submission_desks d ON d.submission_id = s.id AND d.desk_id = ?"
            " WHERE e.seq > ? AND NOT EXISTS"
            "  (SELECT 1 FROM acks a WHERE a.submission_id = s.id AND a.desk_id = ?)"
            " ORDER BY e.seq LIMIT ?",
            (desk, after, desk, limit),
        ).fetchall()
        items: list[ExportItem] = []
        files_so_far = bytes_so_far = 0
        for seq, sid, day, kind in rows:
            files = self.storage.db.execute(
                "SELECT id, kind, ciphertext_size FROM files WHERE submission_id = ?"
                " ORDER BY position", (sid,)
            ).fetchall()
            reports = [f for f, kind, _ in files if kind == "report"]
            attachments = tuple(f for f, kind, _ in files if kind == "attachment")
            size = sum(n for _, _, n in files)
            if len(reports) != 1:
                log.error("submission has %d report files; not exported", len(reports))
                continue
            if not all(self.storage.store_path(f).exists() for f, _, _ in files):
                # Never let one damaged item block every later export for the desk.
                log.error("a submission's ciphertext is missing from store/; not exported")
                continue
            if items and (files_so_far + 1 + len(attachments) > max_files
                          or bytes_so_far + size > max_bytes):
                break
            files_so_far += 1 + len(attachments)
            bytes_so_far += size
            items.append(ExportItem(seq, sid, day, reports[0], attachments, kind))
        return items

    def statement(self, desk: str, after: int) -> DeskStatement:
        """What this desk's export from cursor ``after`` states (see DeskStatement)."""
        self._assign_sequence()
        db = self.storage.db
        unacked = (
            " FROM export_seq e JOIN submission_desks d"
            "  ON d.submission_id = e.submission_id AND d.desk_id = ?"
            " WHERE NOT EXISTS (SELECT 1 FROM acks a"
            "  WHERE a.submission_id = e.submission_id AND a.desk_id = ?)"
        )
        total = db.execute(f"SELECT COUNT(*){unacked}", (desk, desk)).fetchone()[0]  # noqa: S608
        before = db.execute(
            f"SELECT COUNT(*){unacked} AND e.seq <= ?", (desk, desk, after)  # noqa: S608
        ).fetchone()[0]
        ids = db.execute(
            f"SELECT e.submission_id{unacked} AND e.seq <= ? ORDER BY e.seq LIMIT ?",  # noqa: S608
            (desk, desk, after, STATEMENT_MAX_IDS),
        ).fetchall()
        deleted = db.execute(
            "SELECT submission_id, received_day, deleted_day FROM unacknowledged_deletions"
            " WHERE desk_id = ? ORDER BY deleted_day, submission_id LIMIT ?",
            (desk, STATEMENT_MAX_IDS),
        ).fetchall()
        return DeskStatement(
            unacknowledged=int(total),
            before_cursor_count=int(before),
            before_cursor=tuple(str(r[0]) for r in ids),
            deleted=tuple((str(a), str(b), str(c)) for a, b, c in deleted),
        )

    # -- the export cache (outgoing/) ----------------------------------------
    # Called on the event loop's thread, which owns the counters; the bundle itself is
    # written on a worker thread in between (bundles.write_export).

    def cached_export(self, desk: str, after: int, upto: int) -> Path:
        """The path of the cached bundle of ``desk`` from ``after`` to ``upto``."""
        return fs.safe_join(self.outgoing_dir, f"{desk}-{after}-{upto}.bundle")

    def make_room_for_export(self, desk: str, keep: Path, items: Sequence[ExportItem]) -> None:
        """Before building ``keep``: drop ``desk``'s other cached bundles, then check that
        the bundle fits above the free-space floor (DiskFull if not, nothing written).

        The quota is not checked: it counts the cache, but exporting is how a desk gets
        reports acknowledged and deleted, so a full quota must never stop it.
        """
        for name in fs.list_names(self.outgoing_dir):
            if name != keep.name and _is_cached_bundle_of(desk, name):
                self._drop_cached(name)
        need = _BUNDLE_OVERHEAD
        for item in items:
            for file_id in (item.report_file, *item.attachment_files):
                need += _BUNDLE_OVERHEAD_PER_FILE
                need += self.storage.store_path(file_id).stat().st_size
        if self.storage.free_bytes() - need < self.storage.config.min_free_bytes:
            raise DiskFull("no room for the export bundle above the free-space floor")

    def count_cached_export(self, path: Path) -> None:
        """A bundle was added to the cache: its bytes count in the quota."""
        self.storage.used_bytes += path.stat().st_size

    def _drop_cached(self, name: str) -> None:
        if not fs.NAME_RE.fullmatch(name):
            return  # a bundle being built (its hidden partial file), or a crash's: open()
        path = fs.safe_join(self.outgoing_dir, name)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if fs.safe_unlink(self.outgoing_dir, name):
            self.storage.used_bytes -= size

    # -- acknowledgements --------------------------------------------------

    def acknowledge(self, desk: str, ids: Iterable[str]) -> tuple[int, int]:
        """Record that ``desk`` imported ``ids``. Returns (acknowledged, deleted).

        Ids not addressed to this desk are ignored: a desk can only ever release its
        own claim on a submission.
        """
        acked = deleted = 0
        db = self.storage.db
        for sid in ids:
            if not is_hex_id(sid):
                raise StaffStoreError("malformed submission id")
            addressed = db.execute(
                "SELECT 1 FROM submission_desks WHERE submission_id = ? AND desk_id = ?",
                (sid, desk),
            ).fetchone()
            if not addressed:
                continue
            db.execute(
                "INSERT OR IGNORE INTO acks (submission_id, desk_id) VALUES (?, ?)", (sid, desk)
            )
            acked += 1
            waiting = db.execute(
                "SELECT COUNT(*) FROM submission_desks d WHERE d.submission_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM acks a WHERE a.submission_id = d.submission_id"
                "  AND a.desk_id = d.desk_id)",
                (sid,),
            ).fetchone()[0]
            if waiting == 0:
                self._delete_submission(sid)
                deleted += 1
        if deleted:
            self._after_deletions(submissions=True, replies=False)
        return acked, deleted

    def delete_submission(self, sid: str) -> None:
        """Remove a submission's rows, then its files (secure_delete zeroes the rows)."""
        self._delete_submission(sid)
        self._after_deletions(submissions=True, replies=False)

    def _delete_submission(self, sid: str) -> None:
        """Delete one submission; a desk that had not acknowledged it is told, in its
        next exports, that it went (the ``unacknowledged_deletions`` table)."""
        db = self.storage.db
        today = utc_today().isoformat()
        files = [
            r[0]
            for r in db.execute("SELECT id FROM files WHERE submission_id = ?", (sid,)).fetchall()
        ]
        sizes = db.execute(
            "SELECT COALESCE(SUM(ciphertext_size), 0) FROM files WHERE submission_id = ?", (sid,)
        ).fetchone()[0]
        with immediate_transaction(db.conn) as conn:
            # A desk that never acknowledged it may never have received it (a transfer
            # machine can withhold an export): never delete it without a word.
            conn.execute(
                "INSERT OR IGNORE INTO unacknowledged_deletions"
                " (desk_id, submission_id, received_day, deleted_day)"
                " SELECT d.desk_id, s.id, s.day, ? FROM submissions s"
                " JOIN submission_desks d ON d.submission_id = s.id WHERE s.id = ?"
                " AND NOT EXISTS (SELECT 1 FROM acks a"
                "  WHERE a.submission_id = s.id AND a.desk_id = d.desk_id)",
                (today, sid),
            )
            for table, column in (
                ("acks", "submission_id"),
                ("export_seq", "submission_id"),
                ("files", "submission_id"),
                ("submission_desks", "submission_id"),
                ("submissions", "id"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (sid,))  # noqa: S608
        # After the commit: a crash here leaves unreferenced files, which start-up removes.
        for file_id in files:
            fs.safe_unlink(self.storage.store_dir, f"{file_id}.age")
        self.storage.used_bytes -= int(sizes)

    def _after_deletions(self, *, submissions: bool, replies: bool) -> None:
        """After a batch of deletions, leave no copy and no clock behind on this server.

        - Cached export bundles may hold deleted submissions' ciphertext: drop them all
          (a fetch rebuilds its bundle; a resume that no longer matches starts over).
          Replies are never in them.
        - The directories are fsynced (a crash before this leaves unreferenced files,
          which start-up removes) and dated to the day again: unlinking dated them to
          the second.
        - secure_delete zeroes the main database file, but the WAL keeps old page
          images until a checkpoint: copy them back and truncate it now; then the
          database files are dated to the day too.
        """
        today = utc_today()
        dirs = []
        if submissions:
            for name in list(fs.list_names(self.outgoing_dir)):
                self._drop_cached(name)
            dirs += [self.storage.store_dir, self.outgoing_dir]
        if replies:
            dirs.append(self.replies_dir)
        for d in dirs:
            fs.fsync_dir(d)
            fs.set_day(d, today)
        self.storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.storage.date_db_files(today)

    # -- applied bundles ---------------------------------------------------

    def claim_bundle(self, bundle_id: str) -> bool:
        """Record that a bundle is being applied; False if it already was."""
        cur = self.storage.db.execute(
            "INSERT OR IGNORE INTO applied_bundles (id) VALUES (?)", (bundle_id,)
        )
        return cur.rowcount == 1

    def submission_files(self, sid: str) -> list[Path]:
        """The paths in store/ of a submission's files."""
        rows = self.storage.db.execute(
            "SELECT id FROM files WHERE submission_id = ?", (sid,)).fetchall()
        return [self.storage.store_path(r[0]) for r in rows]

    def remove_unrecorded(self, paths: Sequence[Path]) -> None:
        """Remove files (in replies/ or store/) whose rows were rolled back; what they
        took from the quota is given back."""
        for path in paths:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if fs.safe_unlink(path.parent, path.name) and path.parent == self.storage.store_dir:
                self.storage.used_bytes -= size
        for d in {p.parent for p in paths}:
            fs.fsync_dir(d)

    # -- referrals ---------------------------------------------------------

    def file_referral(
        self,
        *,
        to_desk: str,
        writers: Sequence[Callable[[Path], None]],
        day: _dt.date | None = None,
    ) -> str:
        """File a report another desk re-encrypted to ``to_desk`` as a new item for it.

        ``writers[0]`` writes the report document's age file, the others its attachments,
        each to the path it is given. Same durability order as a source's report: files
        made durable in store/ first, then one transaction records them. The server knows
        no source for it (the document inside names the source's reply recipient, which
        is all a reply needs).
        """
        if not is_desk_id(to_desk):
            raise StaffStoreError("malformed desk id")
        self.storage.check_quota()
        self.storage.check_free_space()
        day = day or utc_today()
        storage = self.storage
        stored: list[tuple[str, str, int]] = []
        try:
            for n, write in enumerate(writers):
                file_id = new_id()
                size = _stage(write, f"{file_id}.age", storage.incoming_dir,
                              storage.store_dir, day)
                stored.append((file_id, "report" if n == 0 else "attachment", size))
        except BaseException:
            for file_id, _, _ in stored:
                fs.safe_unlink(storage.store_dir, f"{file_id}.age")
            raise
        sid = new_id()
        try:
            # Inside an outbox bundle's transaction, a savepoint (bundles.py).
            with nested_transaction(storage.db.conn) as conn:
                conn.execute(
                    "INSERT INTO submissions (id, day, source_id, reply_recipient, type)"
                    " VALUES (?, ?, '', '', 'report')",
                    (sid, day.isoformat()),
                )
                conn.execute(
                    "INSERT INTO submission_desks (submission_id, desk_id) VALUES (?, ?)",
                    (sid, to_desk),
                )
                conn.executemany(
                    "INSERT INTO files (id, submission_id, kind, ciphertext_size, position)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(f, sid, k, s, n) for n, (f, k, s) in enumerate(stored)],
                )
        except BaseException:
            for file_id, _, _ in stored:
                fs.safe_unlink(storage.store_dir, f"{file_id}.age")
            raise
        storage.used_bytes += sum(s for _, _, s in stored)
        storage.date_db_files(day)
        return sid

    # -- replies -----------------------------------------------------------

    def store_reply(
        self,
        *,
        reply_recipient: str,
        desk: str,
        write: Callable[[Path], None],
        day: _dt.date | None = None,
    ) -> str:
        """Store one reply for a source; ``write(path)`` puts the (verified) age file there.

        The file is written in staff-incoming/, made durable, moved into replies/, and
        only then recorded. Returns the reply's id.
        """
        parse_recipient(reply_recipient)  # raises ValueError if malformed
        day = day or utc_today()
        reply_id = new_id()
        size = _stage(write, f"{reply_id}.age", self.upload_dir, self.replies_dir, day)
        # position: this source's replies in order (there is no rowid to give it).
        self.storage.db.execute(
            "INSERT INTO replies (id, reply_recipient, desk_id, day, ciphertext_size, position)"
            " SELECT ?, ?, ?, ?, ?, COALESCE(MAX(position) + 1, 0) FROM replies"
            " WHERE reply_recipient = ?",
            (reply_id, reply_recipient, desk, day.isoformat(), size, reply_recipient),
        )
        return reply_id

    def replies_for(self, reply_recipient: str) -> list[dict[str, Any]]:
        rows = self.storage.db.execute(
            "SELECT id, desk_id, day FROM replies WHERE reply_recipient = ?"
            " ORDER BY position DESC",
            (reply_recipient,),
        ).fetchall()
        return [{"id": r[0], "desk": r[1], "day": r[2]} for r in rows]

    def reply_path(self, reply_id: str) -> Path:
        if not is_hex_id(reply_id):
            raise StaffStoreError("malformed reply id")
        return fs.safe_join(self.replies_dir, f"{reply_id}.age")

    def delete_reply(self, reply_id: str, reply_recipient: str) -> bool:
        """Delete one reply, if it is this recipient's; False if there is none such."""
        if not self._delete_reply(reply_id, reply_recipient):
            return False
        self._after_deletions(submissions=False, replies=True)
        return True

    def _delete_reply(self, reply_id: str, reply_recipient: str) -> bool:
        cur = self.storage.db.execute(
            "DELETE FROM replies WHERE id = ? AND reply_recipient = ?", (reply_id, reply_recipient)
        )
        if cur.rowcount != 1:
            return False
        fs.safe_unlink(self.replies_dir, f"{reply_id}.age")
        return True

    # -- retention ---------------------------------------------------------

    def expire(self, today: _dt.date, retention_days: int) -> dict[str, int]:
        """Delete submissions, replies and idle sources older than the retention period.

        Day granularity is all the server knows: something that arrived on day D is
        deleted on day D + retention_days.
        """
        cutoff = (today - _dt.timedelta(days=retention_days)).isoformat()
        db = self.storage.db
        old = [
            r[0]
            for r in db.execute("SELECT id FROM submissions WHERE day <= ?", (cutoff,)).fetchall()
        ]
        for sid in old:
            self._delete_submission(sid)
        # The record of what went unacknowledged is itself kept one retention period:
        # a desk that fetches at least that often is told of every such deletion.
        db.execute("DELETE FROM unacknowledged_deletions WHERE deleted_day <= ?", (cutoff,))
        old_replies = db.execute(
            "SELECT id, reply_recipient FROM replies WHERE day <= ?", (cutoff,)
        ).fetchall()
        for reply_id, recipient in old_replies:
            self._delete_reply(reply_id, recipient)
        # A source not seen (no submission, no login) for the retention period goes,
        # with every reply still waiting for it: nobody is coming back for them.
        idle = db.execute(
            "SELECT source_id, reply_recipient FROM sources WHERE last_seen_day <= ?", (cutoff,)
        ).fetchall()
        idle_replies = 0
        for source_id, recipient in idle:
            for reply in self.replies_for(recipient):
                idle_replies += self._delete_reply(reply["id"], recipient)
            # source_desks rows go with it (ON DELETE CASCADE).
            db.execute("DELETE FROM sources WHERE source_id = ?", (source_id,))
        self._after_deletions(submissions=True, replies=True)
        # The sources' count is not reported: the staff app's log line and its
        # callers know submissions and replies only.
        return {"submissions": len(old), "replies": len(old_replies) + idle_replies}


def _is_cached_bundle_of(desk: str, name: str) -> bool:
    # Desk ids may hold "-", but a cached name has exactly two numbers after its desk:
    # "a-1-2-3.bundle" is desk a-1's, never desk a's.
    return name.startswith(desk) and _CACHE_SUFFIX.fullmatch(name[len(desk):]) is not None


def index_document(desk: str, after: str, cursor: str, items: Sequence[ExportItem],
                   statement: DeskStatement, *, version: int = 2) -> bytes:
    """index.json of a desk-export bundle, version 2, or 3 for a bundle that also carries
    the server's keyring.json (docs/transfer-format.md)."""
    doc = {
        "format": "amana-desk-export",
        "version": version,
        "desk": desk,
        "after": after,
        "cursor": cursor,
        "unacknowledged": statement.unacknowledged,
        "before_cursor": {"count": statement.before_cursor_count,
                          "ids": list(statement.before_cursor)},
        "deleted_unacknowledged": [
            {"id": sid, "day": day, "deleted": deleted}
            for sid, day, deleted in statement.deleted
        ],
        "items": [
            {
                "id": item.id,
                "type": item.type,
                "day": item.day,
                "files": [
                    f"{item.id}.json.age",
                    *(f"{item.id}.a{n}.age" for n in range(1, len(item.attachment_files) + 1)),
                ],
            }
            for item in items
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")
