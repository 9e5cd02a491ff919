"""One thread for every use of the vault.

The vault's SQLite connection belongs to the thread that opened it (sqlite3's
check_same_thread), and two requests must never interleave their changes and saves.
So the vault is unlocked on one worker thread and every handler hands it a function
to run there, one at a time (:meth:`VaultWorker.run`); the event loop stays free to
answer the import progress page, which reads only an :class:`ImportJob`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from journalist_client.vault import Vault

__all__ = ["ImportJob", "VaultWorker", "bulk"]

T = TypeVar("T")


def _guarded(fn: Callable[[Vault], T], vault: Vault) -> T:
    try:
        return fn(vault)
    except BaseException:
        # An action that failed half-way must not leave changes in memory for the next
        # action's save to make durable: back to the last saved state.
        vault.discard_unsaved()
        raise


def bulk(vault: Vault) -> contextlib.AbstractContextManager[Any]:
    """``vault.bulk()``: an import or a rescan is saved whole, not noted row by row in
    the journal (ADR 0010)."""
    return vault.bulk()


class VaultWorker:
    """Owns the unlocked vault (and so its lock) for the UI's whole life."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amana-vault")
        self._vault: Vault | None = None

    def unlock(self, opener: Callable[[], Vault]) -> Vault:
        """Unlock the vault on the worker thread (``opener`` may ask for the passphrase)."""
        self._vault = self._pool.submit(opener).result()
        # A session: each save appends the changed rows to the encrypted journal, so a
        # triage action is durable in milliseconds (ADR 0010).
        self._pool.submit(self._vault.start_journal).result()
        return self._vault

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            raise RuntimeError("the vault is not open")
        return self._vault

    async def run(self, fn: Callable[[Vault], T]) -> T:
        """Run ``fn(vault)`` on the worker thread, after whatever was queued before it."""
        vault = self.vault
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(_guarded, fn, vault))

    def call(self, fn: Callable[[Vault], T]) -> T:
        """:meth:`run` from synchronous code (tests, benchmarks, start-up)."""
        return self._pool.submit(_guarded, fn, self.vault).result()

    def submit(self, fn: Callable[[Vault], T]) -> Future[T]:
        """Queue ``fn(vault)`` as background work; the caller keeps the future."""
        return self._pool.submit(_guarded, fn, self.vault)

    def close(self) -> None:
        """Close the vault (saved work is dated, the lock released) and stop the thread."""
        if self._vault is not None:
            vault, self._vault = self._vault, None
            self._pool.submit(vault.close).result()
        self._pool.shutdown(wait=True)


@dataclass
class ImportJob:
    """A bundle import running on the worker thread, as the progress page sees it."""

    bundle: str
    done: int = 0
    total: int = 0
    finished: bool = False
    # Lines for the triager when finished: what was imported, or why not.
    lines: list[str] = field(default_factory=list)
    failed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, done: int, total: int) -> None:
        with self._lock:
            self.done, self.total = done, total

    def finish(self, lines: list[str], *, failed: bool) -> None:
        with self._lock:
            self.lines, self.failed, self.finished = lines, failed, True
            self.done = self.total

    def snapshot(self) -> tuple[int, int, bool, list[str], bool]:
        with self._lock:
            return self.done, self.total, self.finished, list(self.lines), self.failed
