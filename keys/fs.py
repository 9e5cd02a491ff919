"""The one set of safe file operations that keys/, intake_server/ and journalist_client/ use.

Key material, ciphertext and decrypted evidence must never be left readable by others,
half-written, silently replaced, or reached through a planted symbolic link. Every
module that creates, replaces, moves or removes a file calls one of the functions
below, so reviewing this file reviews the project's whole disk footprint; the audit
test (tests/test_fs_audit.py) bans the raw calls everywhere else.

What every function here guarantees:

- files are created 0600 and directories 0700 *exactly*: the mode is set with
  ``fchmod``/``chmod`` after creation, because ``open``'s and ``mkdir``'s mode is
  filtered through the umask (a permissive umask is harmless, a restrictive one such as
  0o277 would otherwise leave an owner unable to write);
- nothing is created or opened through a symbolic link (``O_NOFOLLOW``, ``O_EXCL``,
  ``lstat``), and nothing is silently replaced unless the caller says ``overwrite``;
- a name joined onto a directory is one harmless component (:func:`safe_join`), so a
  name that came from elsewhere can never climb out of the directory;
- a write that must survive a crash is atomic (temporary file, fsync, link or rename,
  fsync of the directory): after a power cut the name holds the old content or the
  whole new content, never a prefix;
- timestamps that are set are midnight UTC of a day, never finer (:func:`set_day`).

Errors: :class:`FsError` when a name or a path is refused (:class:`FileExistsRefused`
when it exists and the caller did not ask to replace it; it is also a
``FileExistsError``); the operating system's ``OSError`` otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, TypeAlias

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "NAME_RE",
    "AtomicWriter",
    "FileExistsRefused",
    "FsError",
    "append_durable",
    "atomic_write_bytes",
    "atomic_write_text",
    "create_exclusive",
    "day_timestamp",
    "fsync_dir",
    "is_stream_sink",
    "list_dir_names",
    "list_names",
    "lock_exclusive",
    "move_durable",
    "open_quietly",
    "move_tree_into_place",
    "open_resumable",
    "open_stream_sink",
    "private_dir",
    "private_staging_dir",
    "read_nofollow",
    "read_quietly",
    "remove_staging_dir",
    "safe_join",
    "safe_mkdir",
    "safe_remove",
    "safe_unlink",
    "set_day",
    "set_day_tree",
    "sync_all",
    "today",
    "write_unsynced",
]

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700

# The one grammar of a name joined onto a directory: ids the programs chose plus a fixed
# suffix, and bundle file names (keys.bundle.check_name). No separator, no NUL, no
# leading dot (nothing hidden, neither "." nor ".."), and ".." nowhere (safe_join).
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

StrPath: TypeAlias = str | os.PathLike[str]

_NEW_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class FsError(Exception):
    """A path or a name was refused."""


class FileExistsRefused(FsError, FileExistsError):
    """The destination exists and the caller did not ask to replace it."""


def safe_join(directory: StrPath, name: str) -> Path:
    """``directory/name`` after checking that ``name`` is one harmless path component."""
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise FsError(f"refusing file name {name[:40]!r}")
    return Path(directory) / name


def fsync_dir(directory: StrPath) -> None:
    """fsync a directory, so that names created, renamed or removed in it are durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- directories ----------------------------------------------------------------------


def safe_mkdir(path: StrPath, *, parents: bool = False, exist_ok: bool = False) -> Path:
    """Create a directory, mode 0700 exactly, and return its path.

    With ``parents``, missing parents are created the same way (0700); existing ones,
    symbolic links among them, are used as they are. With ``exist_ok``, an existing
    directory is accepted as is (its mode is not changed: it may be the user's own; see
    :func:`private_dir`). A symbolic link or a non-directory at ``path`` is always
    refused with ``NotADirectoryError``; without ``exist_ok`` an existing directory
    raises :class:`FileExistsRefused`.
    """
    p = Path(path)
    if parents and not p.parent.is_dir():
        safe_mkdir(p.parent, parents=True, exist_ok=True)
    try:
        os.mkdir(p, DIR_MODE)
    except FileExistsError:
        mode = os.lstat(p).st_mode
        if stat.S_ISLNK(mode):
            raise NotADirectoryError(f"{p} is a symbolic link") from None
        if not stat.S_ISDIR(mode):
            raise NotADirectoryError(f"{p} exists and is not a directory") from None
        if not exist_ok:
            raise FileExistsRefused(f"{p} already exists") from None
        return p
    os.chmod(p, DIR_MODE)  # a fresh directory, not a link: we just made it
    fsync_dir(p.parent)
    return p


def private_dir(path: StrPath, *, parents: bool = False) -> Path:
    """Create ``path`` or take the existing directory, and make it 0700.

    For the programs' own data directories: one left world-readable (by an older
    version, a restore, a careless ``cp -r``) is closed rather than trusted.
    """
    p = safe_mkdir(path, parents=parents, exist_ok=True)
    # fchmod on a descriptor opened without following links: a directory swapped for a
    # symbolic link since safe_mkdir looked is refused, not chmod'ed through.
    fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)
    return p


# --- writing --------------------------------------------------------------------------


def _check_replaceable(path: Path) -> None:
    # Replacing by rename is only meaningful for a regular file. Renaming over a device
    # (``-o /dev/null``), a FIFO, a symlink (``/dev/stdout``) or a directory would
    # destroy the node itself, not write to it.
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise FileExistsRefused(f"{path} exists and is not a regular file; refusing to replace it")


class AtomicWriter:
    """A binary file (0600) that appears at ``path`` only when the ``with`` block succeeds.

    >>> with AtomicWriter("out.age") as f:   # doctest: +SKIP
    ...     f.write(b"...")

    The data goes to a fresh, exclusively created temporary file in the destination's
    directory, is fsynced, and only then takes the final name; the directory is fsynced
    too. ``commit()`` may be called explicitly; ``abort()`` discards, and leaving the
    block by an exception aborts. Unless ``overwrite=True`` an existing destination is
    refused, race-free (``link`` fails if the name appeared meanwhile); with it, only a
    regular file is replaced.
    """

    def __init__(self, path: StrPath, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self._overwrite = overwrite
        self._dir = self.path.parent
        if not overwrite and os.path.lexists(self.path):
            # Checked again, race-free, at commit; this early check spares the caller
            # the work of producing content that would then be refused.
            raise FileExistsRefused(f"{self.path} already exists")
        if overwrite:
            _check_replaceable(self.path)
        # A random, hidden name: a crash leaves an obviously partial file that never
        # collides with a real one; O_EXCL|O_NOFOLLOW refuses a planted symlink.
        self._tmp = self._dir / f".{self.path.name}.{secrets.token_hex(8)}.partial"
        fd = os.open(self._tmp, _NEW_FILE, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._done = False

    @property
    def file(self) -> BinaryIO:
        return self._file

    @property
    def partial_path(self) -> Path:
        return self._tmp

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._file.write(data)

    def commit(self) -> Path:
        if self._done:
            raise ValueError("AtomicWriter already finished")
        self._done = True
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if self._overwrite:
                _check_replaceable(self.path)
                os.replace(self._tmp, self.path)
            else:
                # link() fails with EEXIST if the name appeared meanwhile: no clobbering.
                try:
                    os.link(self._tmp, self.path, follow_symlinks=False)
                except FileExistsError:
                    raise FileExistsRefused(f"{self.path} already exists") from None
                os.unlink(self._tmp)
            fsync_dir(self._dir)
        except BaseException:
            self._discard()
            raise
        return self.path

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            if not self._done:
                self.commit()
        else:
            self.abort()


def atomic_write_bytes(path: StrPath, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (0600), refusing to replace unless asked."""
    with AtomicWriter(path, overwrite=overwrite) as w:
        w.write(data)
    return w.path


def atomic_write_text(path: StrPath, text: str, *, overwrite: bool = False) -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def create_exclusive(directory: StrPath, name: str) -> BinaryIO:
    """Create ``directory/name`` (0600) for writing; :class:`FileExistsRefused` if it exists.

    Not atomic and not synced: for a file whose completion the caller records
    elsewhere (a streamed upload, renamed into place by :func:`move_durable`).
    """
    path = safe_join(directory, name)
    try:
        fd = os.open(path, _NEW_FILE, FILE_MODE)
    except FileExistsError:
        raise FileExistsRefused(f"{path} already exists") from None
    os.fchmod(fd, FILE_MODE)
    # Buffered: BufferedWriter.write never writes short.
    return os.fdopen(fd, "wb")


def open_resumable(path: StrPath, *, resume: bool) -> BinaryIO:
    """Open a file written in pieces over time (a download resumed after a dropped
    connection): appended to with ``resume``, else emptied; created 0600 if missing,
    never through a symlink. The caller fsyncs when a piece must be durable."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags | (os.O_APPEND if resume else os.O_TRUNC), FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab" if resume else "wb")


def append_durable(path: StrPath, data: bytes, *, create: bool) -> None:
    """Append ``data`` to a file and fsync it before returning (a journal's record).

    With ``create`` the file must not exist yet (``O_EXCL``; :class:`FileExistsRefused`
    otherwise) and its directory is fsynced too, so the new name survives a power cut;
    without it the file must exist. Never through a symlink; created 0600. A crash in
    the middle leaves a prefix of ``data`` at the end of the file: the reader must
    recognise a torn last record.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    if create:
        flags |= os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        raise FileExistsRefused(f"{path} already exists") from None
    try:
        if create:
            os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if create:
        fsync_dir(Path(path).parent)


def write_unsynced(path: StrPath, data: bytes) -> None:
    """Write a file (0600, truncating, never through a symlink) *without* fsync.

    For many small files whose durability is settled at once by :func:`sync_all`
    before anything that refers to them is saved: an fsync each would cost more than
    the rest of the work together.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def sync_all() -> None:
    """Flush every file written so far to stable storage (one call instead of one per file)."""
    os.sync()


def is_stream_sink(path: StrPath) -> bool:
    """Whether ``path`` names an existing character device or FIFO (``/dev/null``,
    ``/dev/stdout`` on a pipe, a named pipe): something to write *to*, not to replace."""
    try:
        st = os.stat(path)  # follows symlinks: /dev/stdout -> /proc/self/fd/1
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)


def open_stream_sink(path: StrPath) -> BinaryIO:
    """Open an existing character device or FIFO for writing, never creating anything."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY)
    st = os.fstat(fd)
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        os.close(fd)
        raise FileExistsRefused(f"{path} is not a device or a pipe")
    return os.fdopen(fd, "wb")


# --- moving and removing --------------------------------------------------------------


def move_durable(src: StrPath, dst_dir: StrPath, name: str) -> Path:
    """Move the regular file ``src`` to ``dst_dir/name`` (same file system) and fsync
    ``dst_dir``; never replaces (:class:`FileExistsRefused`)."""
    dst = safe_join(dst_dir, name)
    if not stat.S_ISREG(os.lstat(src).st_mode):
        raise FsError(f"{src} is not a regular file")
    # link + unlink rather than rename: rename would silently replace an existing dst.
    # A crash between the two leaves both names, never neither.
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsRefused(f"{name!r} already exists in {dst_dir}") from None
    os.unlink(src)
    fsync_dir(dst_dir)
    return dst


def private_staging_dir(final: StrPath) -> Path:
    """A new, empty 0700 directory beside ``final`` (hidden, random name) in which to
    build something whole, then :func:`move_tree_into_place`; a failure midway leaves
    nothing at ``final`` (:func:`remove_staging_dir` clears the staging directory)."""
    final = Path(final)
    staging = final.parent / f".{final.name}.{secrets.token_hex(8)}.partial"
    return safe_mkdir(staging)


def move_tree_into_place(staging: StrPath, final: StrPath) -> Path:
    """Rename the directory ``staging`` to ``final`` (same file system) and fsync the
    parent. ``final`` may be missing or an empty directory (the kernel refuses to
    replace one that is not empty); anything else is refused."""
    final = Path(final)
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise FileExistsRefused(f"{final} exists and is not a directory")
    try:
        os.rename(staging, final)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsRefused(f"{final} exists and is not empty") from None
        raise
    fsync_dir(final.parent)
    return final


def remove_staging_dir(staging: StrPath) -> None:
    """Remove a directory tree that :func:`private_staging_dir` made and a failed build
    left behind. Symlinks inside are removed, never followed; a name that does not look
    like a staging directory is refused, so this never removes anything else."""
    staging = Path(staging)
    if not (staging.name.startswith(".") and staging.name.endswith(".partial")):
        raise FsError(f"{staging} is not a staging directory")
    if os.path.lexists(staging):
        shutil.rmtree(staging)


def safe_unlink(directory: StrPath, name: str) -> bool:
    """Remove ``directory/name`` if it is there; whether it was.

    Never a directory (the kernel refuses, ``IsADirectoryError``) and never through a
    symlink (unlink removes the link itself). Not fsynced: a caller that removes many
    names calls :func:`fsync_dir` once after them when the removal must be durable.
    """
    try:
        os.unlink(safe_join(directory, name))
    except FileNotFoundError:
        return False
    return True


def safe_remove(path: StrPath) -> bool:
    """Remove one file durably (unlink, then fsync its directory); whether it was there.

    For a path the caller holds whole rather than a name in a managed directory; like
    :func:`safe_unlink`, never a directory and never through a symlink.
    """
    p = Path(path)
    try:
        os.unlink(p)
    except FileNotFoundError:
        return False
    fsync_dir(p.parent)
    return True


def open_quietly(path: StrPath, flags: int) -> int:
    """``os.open(path, flags)`` with O_NOATIME: reading the file (or listing the
    directory) leaves its access time as it was. With relatime, the first read of a
    file or directory dated to the day would set its atime to the second it was read:
    an unlock, a push, a fetch. O_NOATIME needs the file's owner, which the reading
    program is; where it is refused this opens as usual."""
    try:
        return os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        return os.open(path, flags)


def _entries(directory: StrPath, keep: str) -> list[str]:
    # Listed through a descriptor opened quietly: no atime of the listing.
    fd = open_quietly(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.scandir(fd) as entries:
            if keep == "files":
                return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    finally:
        os.close(fd)


def list_names(directory: StrPath) -> list[str]:
    """The names of the regular files directly inside ``directory`` (no links), sorted;
    listed without updating the directory's access time."""
    return _entries(directory, "files")


def list_dir_names(directory: StrPath) -> list[str]:
    """The names of the directories directly inside ``directory`` (no links), sorted;
    listed without updating the directory's access time."""
    return _entries(directory, "dirs")


# --- time, locks, reading -------------------------------------------------------------


def today() -> dt.date:
    """The UTC day: the finest time the programs record or leave on a file."""
    return dt.datetime.now(dt.UTC).date()


def day_timestamp(day: dt.date) -> float:
    """Midnight UTC of ``day`` as a POSIX timestamp."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def set_day(path: StrPath, day: dt.date) -> None:
    """Set a file's or directory's atime and mtime to midnight UTC of ``day`` (no follow).

    The programs store no time finer than the UTC day; a precise mtime on a ciphertext
    file would be exactly such a time. (ctime cannot be set from user space;
    docs/threat-model.md says what that leaves.)
    """
    ts = day_timestamp(day)
    os.utime(path, (ts, ts), follow_symlinks=False)


def set_day_tree(root: StrPath, day: dt.date) -> None:
    """:func:`set_day` on ``root`` and on every file and directory below it.

    Symbolic links are neither followed nor changed. For a program's own directory
    after it wrote there (the offline vault, the transfer directory): every name in it
    then shows the same day, the last day it was used, and not when each file arrived.
    Setting the times also sets every inode's change time (ctime) to now, which no one
    can set back: the ctimes too tell only when the tree was last dated.
    """
    top = Path(root)
    for parent, dirs, files in os.walk(top, topdown=False):
        for name in files + dirs:
            path = Path(parent, name)
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                set_day(path, day)
    set_day(top, day)


def lock_exclusive(path: StrPath) -> int | None:
    """Open (creating 0600, never through a symlink) and ``flock`` ``path``.

    Returns the descriptor, or None if another process holds the lock. Closing the
    descriptor releases it, and so does the process's death.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_fd(fd: int, path: StrPath, max_bytes: int | None) -> bytes:
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise FsError(f"{path} is not a regular file")
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise FsError(f"{Path(path).name} is larger than {max_bytes} bytes")
    return data


def read_nofollow(path: StrPath, max_bytes: int | None = None) -> bytes:
    """The whole of a regular file, refusing a symlink planted in its place (and a file
    larger than ``max_bytes`` with :class:`FsError`)."""
    # O_NONBLOCK: a FIFO planted in the file's place is refused, not waited on.
    return _read_fd(os.open(path, _READ | os.O_NONBLOCK), path, max_bytes)


def read_quietly(path: StrPath, max_bytes: int | None = None) -> bytes:
    """:func:`read_nofollow` without updating the file's access time.

    A reply's atime would otherwise record the moment its source read it (relatime
    updates a stale atime on the first read), and a vault's or a transfer directory's
    files the moment they were last unlocked or used. O_NOATIME needs the file's owner,
    which the reading program is; where it is refused this falls back to a normal read.
    """
    return _read_fd(open_quietly(path, _READ | os.O_NONBLOCK), path, max_bytes)
