"""The one place in keys/ that creates files and directories.

Key material and decrypted evidence must never be left world-readable, half-written or
silently replaced. Every write therefore goes through :class:`AtomicWriter`: the data
goes to a fresh, exclusively created temporary file (mode 0600) in the destination's
directory, is fsynced, and only then takes the final name; the directory is fsynced
too, so after a crash the name points either to the old content or to the whole new
content, never to a prefix. A failure (or an exception in the ``with`` block) removes
the temporary file. Unless ``overwrite=True``, an existing destination is refused, and
the refusal is race-free (``link`` fails if the name exists).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = [
    "AtomicWriter",
    "FileExistsRefused",
    "is_stream_sink",
    "open_stream_sink",
    "safe_mkdir",
    "safe_remove",
    "safe_write_bytes",
]

_FILE_MODE = 0o600
_DIR_MODE = 0o700


class FileExistsRefused(FileExistsError):
    """The destination exists and the caller did not ask to replace it."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_mkdir(path: str | os.PathLike[str], *, exist_ok: bool = False) -> Path:
    """Create one directory with mode 0700 (its parent must exist).

    With ``exist_ok``, an existing directory is accepted as is (its mode is not changed:
    it may be the user's own), but a symlink or a non-directory is still refused.
    """
    p = Path(path)
    try:
        os.mkdir(p, _DIR_MODE)
    except FileExistsError:
        st = os.lstat(p)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{p} exists and is not a directory") from None
        if not exist_ok:
            raise FileExistsRefused(f"{p} already exists") from None
        return p
    # mkdir's mode is filtered by the umask; make 0700 exact rather than hoping.
    os.chmod(p, _DIR_MODE)
    _fsync_dir(p.parent if str(p.parent) else Path("."))
    return p


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


def is_stream_sink(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an existing character device or FIFO (``/dev/null``,
    ``/dev/stdout`` on a pipe, a named pipe): something to write *to*, not to replace."""
    try:
        st = os.stat(path)  # follows symlinks: /dev/stdout -> /proc/self/fd/1
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)


def open_stream_sink(path: str | os.PathLike[str]) -> BinaryIO:
    """Open an existing character device or FIFO for writing, never creating anything."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY)
    st = os.fstat(fd)
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        os.close(fd)
        raise FileExistsRefused(f"{path} is not a device or a pipe")
    return os.fdopen(fd, "wb")


class AtomicWriter:
    """A binary file that appears at ``path`` only when the ``with`` block succeeds.

    >>> with AtomicWriter("out.age") as f:   # doctest: +SKIP
    ...     f.write(b"...")

    ``commit()`` may be called explicitly; ``abort()`` discards. Leaving the block by an
    exception aborts.
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self._overwrite = overwrite
        directory = self.path.parent if str(self.path.parent) else Path(".")
        self._dir = directory
        if not overwrite and os.path.lexists(self.path):
            # Checked again, race-free, at commit; this early check spares the caller
            # the work of producing content that would then be refused.
            raise FileExistsRefused(f"{self.path} already exists")
        if overwrite:
            _check_replaceable(self.path)
        # A random, hidden name: a crash leaves an obviously partial file that never
        # collides with a real one; O_EXCL|O_NOFOLLOW refuses a planted symlink.
        self._tmp = directory / f".{self.path.name}.{secrets.token_hex(8)}.partial"
        fd = os.open(
            self._tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            _FILE_MODE,
        )
        os.fchmod(fd, _FILE_MODE)
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
                    os.link(self._tmp, self.path)
                except FileExistsError:
                    raise FileExistsRefused(f"{self.path} already exists") from None
                os.unlink(self._tmp)
            _fsync_dir(self._dir)
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


def safe_write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically, mode 0600, refusing to replace unless asked."""
    with AtomicWriter(path, overwrite=overwrite) as w:
        w.write(data)
    return w.path


def safe_remove(path: str | os.PathLike[str]) -> bool:
    """Remove one file (never a directory, never following a symlink's target).

    Returns whether something was removed; the directory is fsynced so that the removal
    survives a crash.
    """
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{p} is a directory")
    os.unlink(p)
    _fsync_dir(p.parent if str(p.parent) else Path("."))
    return True
