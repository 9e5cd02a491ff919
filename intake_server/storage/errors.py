"""The storage's errors, below every other module of the package so that each can raise
them. Callers import them from ``intake_server.storage``.

Out of space: the free-space floor (``min_free_bytes``) is checked before and during an
upload, but the disk can still fill under it (the floor set to 0, another process
writing, a quota of the file system's own). That arrives as an ``OSError`` with
``ENOSPC`` or ``EDQUOT`` from a write, a flush, an fsync, a create or a rename, or as
SQLite's ``SQLITE_FULL`` ("database or disk is full") on a COMMIT. ``disk_full_on_error``
turns each of them into ``DiskFull`` where the storage does the work, so that the source
sees the 503 page that says nothing was kept, never the generic 500.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DiskFull", "QuotaExceeded", "SchemaError", "StorageError", "disk_full_on_error",
           "is_out_of_space"]


class StorageError(Exception):
    """The submission cannot be stored."""


class QuotaExceeded(StorageError):
    """Storing this would exceed the configured disk quota."""


class DiskFull(StorageError):
    """Free space on the data disk is below the configured floor, or it ran out."""


class SchemaError(StorageError):
    """The database cannot be opened with this version's schema (it is newer)."""


_OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_out_of_space(exc: BaseException) -> bool:
    """True if ``exc`` says the disk (or the user's file-system quota) is full.

    By error code only, never by message text: SQLite's extended result codes keep
    the primary code (SQLITE_FULL) in their low byte.
    """
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _OUT_OF_SPACE_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == sqlite3.SQLITE_FULL
    return False


@contextmanager
def disk_full_on_error() -> Iterator[None]:
    """Raise DiskFull for an out-of-space error inside the block; others pass as they are."""
    try:
        yield
    except DiskFull:
        raise
    except (OSError, sqlite3.Error) as exc:
        if is_out_of_space(exc):
            raise DiskFull("the data disk is full") from exc
        raise
