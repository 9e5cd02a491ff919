"""The storage's errors, below every other module of the package so that each can raise
them. Callers import them from ``intake_server.storage``."""

from __future__ import annotations

__all__ = ["DiskFull", "QuotaExceeded", "SchemaError", "StorageError"]


class StorageError(Exception):
    """The submission cannot be stored."""


class QuotaExceeded(StorageError):
    """Storing this would exceed the configured disk quota."""


class DiskFull(StorageError):
    """Free space on the data disk is below the configured floor."""


class SchemaError(StorageError):
    """The database cannot be opened with this version's schema (it is newer)."""
