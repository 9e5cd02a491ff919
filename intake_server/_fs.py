"""The only place in intake_server that creates, renames, deletes or joins paths.

Every risky file-system operation the server performs goes through one of the
``safe_*`` helpers below, so that reviewing them reviews the whole server's disk
footprint. tests/intake_server/test_fs_audit.py fails if another module calls
``open(..., "w")``, ``os.remove``, ``os.unlink``, ``shutil.rmtree``, ``os.rename``
or ``os.mkdir`` directly.

Rules the helpers enforce:
- names joined onto a directory are single path components matching a strict
  pattern (no separators, no ``..``, no NUL), so a caller can never escape it;
- files are created with ``O_EXCL`` and mode 0600, directories with 0700;
- a rename is followed by an fsync of the destination directory, so the new name
  survives a power cut;
- timestamps are normalised to midnight UTC of a given day, never finer.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "FsError",
    "day_timestamp",
    "fsync_dir",
    "list_names",
    "safe_create_exclusive",
    "safe_join",
    "safe_mkdir",
    "safe_rename_durable",
    "safe_set_day",
    "safe_unlink",
    "safe_write_text_atomic",
]

# Names the server itself chooses: random ids plus a fixed suffix. Anything
# else (a source's filename, a path from a config file) never reaches safe_join.
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


class FsError(Exception):
    """A path or name was refused."""


def safe_join(directory: Path, name: str) -> Path:
    """Return directory/name after checking that name is one harmless component."""
    if not _NAME.match(name) or ".." in name:
        raise FsError(f"refusing path component {name!r}")
    return directory / name


def safe_mkdir(path: Path) -> None:
    """Create a directory (and parents) readable by the service user only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered through the umask; make sure it really is 0700.
    os.chmod(path, 0o700)


def safe_create_exclusive(directory: Path, name: str) -> BinaryIO:
    """Create directory/name for writing; fail if it already exists. Mode 0600."""
    path = safe_join(directory, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    # Buffered: BufferedWriter.write never writes short.
    return os.fdopen(fd, "wb")


def fsync_dir(directory: Path) -> None:
    """fsync a directory so that entries created or renamed in it are durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_rename_durable(src_dir: Path, dst_dir: Path, name: str) -> Path:
    """Move src_dir/name to dst_dir/name (same file system) and fsync dst_dir.

    os.rename is atomic within one file system: a reader (or a crash) sees
    either the old name or the new one, never a half-written file in dst_dir.
    """
    src = safe_join(src_dir, name)
    dst = safe_join(dst_dir, name)
    if dst.exists():
        raise FsError(f"{name!r} already exists in the destination")
    os.rename(src, dst)
    fsync_dir(dst_dir)
    return dst


def safe_unlink(directory: Path, name: str) -> None:
    """Delete directory/name if it exists. Never follows a path outside directory."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(safe_join(directory, name))


def list_names(directory: Path) -> Iterator[str]:
    """Names of the regular files directly inside directory."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                yield entry.name


def day_timestamp(day: _dt.date) -> float:
    """Midnight UTC of day as a POSIX timestamp."""
    return _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.UTC).timestamp()


def safe_set_day(path: Path, day: _dt.date) -> None:
    """Set a file's or directory's atime and mtime to midnight UTC of day.

    The server stores no time finer than the UTC day; a precise mtime on a
    ciphertext file would be exactly such a time. (ctime cannot be set from user
    space; docs/threat-model.md says what that leaves.)
    """
    ts = day_timestamp(day)
    os.utime(path, (ts, ts), follow_symlinks=False)


def safe_write_text_atomic(path: Path, text: str, *, mode: int = 0o600,
                           exclusive: bool = False) -> None:
    """Write a small text file (config, key, keyring) via a temp file and rename.

    With exclusive=True an existing file is never replaced.
    """
    directory = path.parent
    if exclusive and path.exists():
        raise FsError(f"{path} already exists; not overwriting it")
    tmp = directory / f".{path.name}.tmp-{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def lock_exclusive(path: Path) -> int | None:
    """Open (0600, never through a symlink) and lock ``path``; the fd, or None if another
    process holds the lock. Closing the fd releases it (and a crash does too)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def read_quietly(path: Path, max_bytes: int) -> bytes:
    """Read a small file without updating its access time.

    A reply's atime would otherwise record the moment its source read it (relatime
    updates a stale atime on the first read). O_NOATIME needs the file's owner, which
    the server is; where it is refused we fall back to a normal read.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FsError(f"{path.name} is larger than {max_bytes} bytes")
    return data
