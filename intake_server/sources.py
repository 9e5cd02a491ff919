"""New source codenames, derived in a separate worker process.

derive_source() runs Argon2id twice over 256 MiB (about a second of CPU). It runs
in a small process pool rather than a thread:
- the 256 MiB work area never inflates the server process, whose memory stays
  bounded by a few 64 KiB upload chunks per connection;
- the event loop keeps serving other sources meanwhile;
- the pool size (config max_concurrent_derivations) bounds CPU and memory.

The codename is generated in the worker too; it crosses back to the server over
the pool's pipe, is shown once in the response, and is never stored or logged.
The worker returns the public reply recipient, never the reply secret key.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

__all__ = ["NewSource", "SourceFactory", "new_source"]


@dataclass(frozen=True, repr=False)
class NewSource:
    codename: str
    source_id: str
    reply_recipient: str

    def __repr__(self) -> str:
        return f"NewSource(source_id={self.source_id!r}, codename=<secret>)"


def new_source() -> NewSource:
    """Generate a codename and derive the source id and reply recipient from it."""
    from keys.codename import derive_source, generate_codename

    codename = generate_codename()
    keys = derive_source(codename)
    return NewSource(codename=codename, source_id=keys.source_id,
                     reply_recipient=str(keys.reply_identity.recipient()))


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: never outlive the server (e.g. after kill -9).

    A worker left behind would keep running codename derivations for nobody and
    hold memory; systemd kills the whole unit, but not every deployment has it.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The server may have died before prctl took effect.
    if os.getppid() != parent_pid:
        os._exit(1)


class SourceFactory:
    """Hands out NewSource values from a bounded process pool."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def create(self) -> NewSource:
        if self._pool is None:
            # spawn, not fork: never duplicate a running event loop and its sockets.
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_die_with_parent, initargs=(os.getpid(),))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, new_source)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
