"""The one place in journalist_client that creates, replaces or joins file paths.

Everything goes through keys' audited atomic writer (temp file in the same directory,
fsync, rename or link, fsync of the directory), so a crash never leaves a half-written
vault, ack or export, and nothing is silently replaced unless the caller says so.
Names that come from a bundle or a document are never used as paths: vault files are
named by ids the client has validated (:func:`vault_path`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from keys._fs import AtomicWriter, FileExistsRefused, safe_mkdir, safe_write_bytes

__all__ = [
    "AtomicWriter",
    "FileExistsRefused",
    "safe_mkdir",
    "safe_move",
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
