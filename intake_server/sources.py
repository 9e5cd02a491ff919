"""New source codenames, derived in a separate worker process.

derive_source() runs Argon2id twice over 256 MiB (about a second of CPU), three times
when the keyring is post-quantum (the source's post-quantum reply key, for every source
alike: keys/codename.py, docs/adr/0008-post-quantum-desks.md). It runs
in a small process pool rather than a thread:
- the 256 MiB work area never inflates the server process, whose memory stays
  bounded by a few 64 KiB upload chunks per connection;
- the event loop keeps serving other sources meanwhile;
- the pool size (config max_concurrent_derivations) bounds CPU and memory.

The codename is generated in the worker too; it crosses back to the server over
the pool's pipe, is shown once in the response, and is never stored or logged.
For a new source the worker returns the public reply recipient(s), never a reply
secret key.

Logins (LoginDeriver) run the same derivation on the codename a source typed, in
a pool of their own with its own bound on work in flight: a flood of logins
fills that pool and gets "busy" answers, while submissions keep taking their
codenames from SourceFactory (and its reserve). A login's worker does return
the reply secret key, to the server process only: the session keeps it in
memory to decrypt replies (sessions.py), and it is never written anywhere.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import NoReturn

__all__ = ["LoginBusy", "LoginDeriver", "LoginKeys", "NewSource", "SourceFactory",
           "derive_login", "new_source"]

log = logging.getLogger("intake_server.sources")


@dataclass(frozen=True, repr=False)
class NewSource:
    codename: str
    source_id: str
    reply_recipient: str
    #: The age1pq1… reply recipient, with a post-quantum keyring only.
    reply_recipient_pq: str | None = None

    def __repr__(self) -> str:
        return f"NewSource(source_id={self.source_id!r}, codename=<secret>)"


def new_source(post_quantum: bool = False) -> NewSource:
    """Generate a codename and derive the source id and reply recipient(s) from it."""
    from keys.codename import derive_source, generate_codename

    codename = generate_codename()
    keys = derive_source(codename, post_quantum=post_quantum)
    pq = keys.reply_pq_identity
    return NewSource(codename=codename, source_id=keys.source_id,
                     reply_recipient=str(keys.reply_identity.recipient()),
                     reply_recipient_pq=str(pq.recipient()) if pq is not None else None)


@dataclass(frozen=True, repr=False)
class LoginKeys:
    source_id: str
    reply_identity: str  # "AGE-SECRET-KEY-1…": text crosses the pool's pipe simply
    reply_pq_identity: str | None = None  # "AGE-SECRET-KEY-PQ-1…", post-quantum keyring

    def __repr__(self) -> str:
        return f"LoginKeys(source_id={self.source_id!r}, reply_identity=<secret>)"


def derive_login(codename: str, post_quantum: bool = False) -> LoginKeys:
    """Worker side of a login: the Argon2id derivations for a normalised codename."""
    from keys.codename import derive_source

    keys = derive_source(codename, post_quantum=post_quantum)
    pq = keys.reply_pq_identity
    return LoginKeys(source_id=keys.source_id, reply_identity=str(keys.reply_identity),
                     reply_pq_identity=str(pq) if pq is not None else None)


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


def _spawn_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: never duplicate a running event loop and its sockets.
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_die_with_parent, initargs=(os.getpid(),))


def _shut_down(pool: ProcessPoolExecutor | None, *, wait: bool) -> None:
    """Stop a pool (if any), cancelling the derivations not yet started."""
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


class SourceFactory:
    """Hands out NewSource values from a bounded process pool.

    With reserve > 0 it keeps that many sources derived ahead of time, in memory
    only, so that a submission gets its codename at once instead of waiting a
    second for Argon2id (and a large upload does not share its CPU with it).
    A reserved codename is no more exposed than one derived on demand: both sit
    in this process's memory until the response is sent, and the reserve is
    gone at restart. Refills happen in the same bounded pool, and only when the
    caller says so (refill()): the upload handler refills once an upload has
    ended, so that the derivation replacing a reserved codename does not take a
    core from the very upload that took it.
    """

    def __init__(self, workers: int, reserve: int = 0, *, post_quantum: bool = False) -> None:
        self._workers = workers
        self._derive = functools.partial(new_source, post_quantum)
        self._reserve_size = reserve
        self._ready: collections.deque[NewSource] = collections.deque()
        self._refilling = 0
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = _spawn_pool(self._workers)
        return self._pool

    @property
    def reserved(self) -> int:
        return len(self._ready)

    def refill(self) -> None:
        """Start derivations until the reserve is (or will be) full. Needs a running
        loop. Never raises: it runs after a report is stored, and a failure here must
        not turn that report's answer into an error. After close(), does nothing."""
        loop = asyncio.get_running_loop()
        while not self._closed and len(self._ready) + self._refilling < self._reserve_size:
            try:
                job = loop.run_in_executor(self._executor(), self._derive)
            except BrokenProcessPool:
                # A worker died while the pool was idle (the OOM killer): the next
                # refill or create() starts a new pool.
                log.error("codename worker died; starting a new pool")
                self._drop_pool()
                return
            except Exception as e:  # noqa: BLE001 - see the docstring
                log.error("codename reserve not refilled: %s", type(e).__name__)
                return
            self._refilling += 1
            job.add_done_callback(self._refilled)

    def _refilled(self, fut: asyncio.Future[NewSource]) -> None:
        self._refilling -= 1
        if fut.cancelled() or self._pool is None:
            return
        exc = fut.exception()
        if isinstance(exc, BrokenProcessPool):
            self._drop_pool()
        if exc is not None:
            # Not retried here (no busy loop on a persistent failure); the next
            # refill() tries again. Type only: never log a codename.
            log.error("codename derivation failed: %s", type(exc).__name__)
            return
        self._ready.append(fut.result())

    async def create(self) -> NewSource:
        """A new source: one from the reserve, or else one derived now. Call
        refill() afterwards to top the reserve up again."""
        if self._ready:
            return self._ready.popleft()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), self._derive)
        except BrokenProcessPool:
            # A worker died (the OOM killer takes a 256 MiB Argon2id worker first): a
            # broken pool never recovers by itself, so start a new one and retry once.
            log.error("codename worker died; starting a new pool")
            self._drop_pool()
            return await loop.run_in_executor(self._executor(), self._derive)

    def _drop_pool(self) -> None:
        _shut_down(self._pool, wait=False)
        self._pool = None

    def close(self) -> None:
        self._closed = True
        self._ready.clear()
        pool, self._pool = self._pool, None
        _shut_down(pool, wait=True)


class LoginBusy(Exception):
    """Too many logins are being derived or waiting already."""


class LoginDeriver:
    """Argon2id for logins, in its own pool: ``workers`` at once, ``queue`` waiting.

    Past that, derive() raises LoginBusy at once rather than queueing: a queue
    that grows with a flood would hold every flooding request (and its
    connection) for minutes. The count covers a derivation until the worker
    really finishes it, even when the request that asked for it has gone.
    """

    def __init__(self, workers: int, queue: int, *, post_quantum: bool = False) -> None:
        self._workers = workers
        self._post_quantum = post_quantum
        self._limit = workers + queue
        self._in_flight = 0
        self._pool: ProcessPoolExecutor | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def derive(self, codename: str) -> LoginKeys:
        if self._in_flight >= self._limit:
            raise LoginBusy
        if self._pool is None:
            self._pool = _spawn_pool(self._workers)
        loop = asyncio.get_running_loop()
        try:
            fut = self._pool.submit(derive_login, codename, self._post_quantum)
        except BrokenProcessPool:
            self._broken()
        self._in_flight += 1

        def done(_: object) -> None:
            # Runs in the pool's management thread; the counter belongs to the loop
            # (which may already be closed when the pool shuts down).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finished)

        fut.add_done_callback(done)
        try:
            # Cancelling the awaiting request cancels a derivation not yet started.
            return await asyncio.wrap_future(fut)
        except BrokenProcessPool:
            self._broken()

    def _broken(self) -> NoReturn:
        # A worker died (the OOM killer, an operator's kill): every later call on
        # this pool would fail. Start a fresh one next time; this source is told to
        # try again.
        log.error("login worker pool broke; starting a new one")
        self._discard_pool()
        raise LoginBusy from None

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        _shut_down(pool, wait=False)

    def _finished(self) -> None:
        self._in_flight -= 1

    def close(self) -> None:
        pool, self._pool = self._pool, None
        _shut_down(pool, wait=True)
