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
    "vault_path",
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
