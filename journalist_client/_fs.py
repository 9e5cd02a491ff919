"""The one place in journalist_client that creates, replaces or joins file paths.

Everything goes through keys' audited atomic writer (temp file in the same directory,
fsync, rename or link, fsync of the directory), so a crash never leaves a half-written
vault, ack or export, and nothing is silently replaced unless the caller says so.
Names that come from a bundle or a document are never used as paths: vault files are
named by ids the client has validated (:func:`vault_path`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from keys._fs import AtomicWriter, FileExistsRefused, safe_mkdir, safe_write_bytes

__all__ = [
    "AtomicWriter",
    "FileExistsRefused",
    "open_lock",
    "private_dir",
    "ram_draft",
    "read_nofollow",
    "safe_mkdir",
    "safe_move",
    "safe_unlink",
    "safe_write_bytes",
    "sync_all",
    "vault_path",
    "write_unsynced",
]

# Bundle file names (keys.bundle.check_name) plus nothing that could climb or hide.
_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def vault_path(directory: str | os.PathLike[str], name: str) -> Path:
    """``directory/name`` for a name the client chose or validated; anything else raises."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"refusing unsafe file name {name[:40]!r}")
    return Path(directory) / name


def safe_move(src: Path, dest_dir: str | os.PathLike[str], name: str) -> Path:
    """Move a vault file into another vault directory (same file system), never replacing."""
    dest = vault_path(dest_dir, name)
    os.link(src, dest)  # fails if dest exists: nothing is overwritten
    os.unlink(src)
    fd = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return dest


def write_unsynced(path: Path, data: bytes) -> None:
    """Write a file (0600, never through a symlink) *without* fsync; see :func:`sync_all`.

    For the importer's many small ciphertext files: an fsync each costs more than the
    rest of the import together. They are flushed at once by :func:`sync_all` before the
    database that refers to them is saved, and the ack is written only after that, so a
    crash can lose at most files that nothing refers to and that the server still has.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def sync_all() -> None:
    """Flush every file written so far to stable storage (one call instead of one per file)."""
    os.sync()


def private_dir(path: Path) -> Path:
    """Create ``path`` (or take an existing empty one) and make it 0700."""
    safe_mkdir(path, exist_ok=True)
    os.chmod(path, 0o700)  # an existing directory may have been world-readable
    return path


def read_nofollow(path: Path) -> bytes:
    """The whole of a regular file, refusing to follow a symlink planted in its place."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def safe_unlink(path: Path) -> None:
    """Remove a file the client itself made (never a directory; a missing file is fine)."""
    path.unlink(missing_ok=True)


def open_lock(path: Path) -> int:
    """Open (creating, 0600, never through a symlink) the vault's lock file; return its fd."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def ram_draft(prefix: str) -> Iterator[Path]:
    """An empty 0600 file for an editor to write a draft in, in RAM where possible.

    The draft is plaintext the triager writes to a source: /dev/shm is a tmpfs, so it
    never reaches a disk there. On leaving, it is overwritten with zeros and removed.
    """
    shm = Path("/dev/shm")  # noqa: S108 - RAM-backed by design, see above
    if not shm.is_dir():
        # The disk temp directory would keep the plaintext draft (zeroing it is not
        # reliable on SSDs or journaling file systems): refuse rather than fall back.
        raise OSError(errno.ENOENT, "no RAM-backed /dev/shm for the draft; write the reply "
                      "with --file FILE (on encrypted storage) or on standard input")
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".txt", dir=shm)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError), open(path, "r+b") as f:
            f.write(b"\0" * os.fstat(f.fileno()).st_size)
            f.flush()
            os.fsync(f.fileno())
        path.unlink(missing_ok=True)
