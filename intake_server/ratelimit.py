"""Server-wide limits: a token bucket for logins, slots (and a queue) for uploads.

Every Tor client reaches the onion service from 127.0.0.1, so per-address limits
mean nothing here: the only meaningful limit is on the whole server. Logins are the
thing worth limiting (each costs an Argon2id derivation); a source who hits the limit
gets a translated "try again later" page, not a silent wait.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

__all__ = ["TokenBucket", "UploadSlots"]


class TokenBucket:
    def __init__(self, *, rate_per_second: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate and burst must be positive")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def try_take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class UploadSlots:
    """Uploads in progress, at most ``limit`` (config.max_concurrent_uploads), and a
    short queue of uploads waiting for one.

    A slot is what an upload's files cost the server (a thread, a few MiB of
    batches, disk space reserved for it), so it is asked for only when an upload is
    about to write (upload.Limits.admit), never while its text fields arrive. An
    upload that finds every slot taken waits in the queue (``queue`` long); the
    caller bounds the wait and keeps checking the waiter's pace meanwhile. When a
    slot is given back, it goes to the waiter whose ``standing`` is highest (the
    pace credit it has banked: a real source's browser fills its buffers at once, a
    trickler never does); when the queue is full, a newcomer takes the place of the
    waiter with the lowest standing if its own is higher, and is refused otherwise.

    Everything here runs on the event loop: no lock is needed.
    """

    def __init__(self, limit: int, queue: int = 0) -> None:
        if limit < 1 or queue < 0:
            raise ValueError("limit must be positive and queue not negative")
        self.limit = limit
        self.queue = queue
        self.active = 0
        self._waiting: list[_Waiter] = []

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for it."""
        if self.active >= self.limit or self._waiting:
            return False
        self.active += 1
        return True

    def request(self, standing: Callable[[], float]) -> asyncio.Future[bool]:
        """Ask for a slot: a future that becomes True once one is this caller's (at
        once if one is free), or False if the caller is refused (the queue is full of
        waiters who stand higher) or pushed out of the queue later. A caller that
        stops waiting must call withdraw() with the future."""
        ticket: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.try_acquire():
            ticket.set_result(True)
            return ticket
        if len(self._waiting) >= self.queue:
            lowest = min(self._waiting, key=lambda w: w.standing(), default=None)
            if lowest is None or lowest.standing() >= standing():
                ticket.set_result(False)
                return ticket
            self._waiting.remove(lowest)
            if not lowest.ticket.done():
                lowest.ticket.set_result(False)
        self._waiting.append(_Waiter(standing, ticket))
        return ticket

    def withdraw(self, ticket: asyncio.Future[bool]) -> None:
        """The caller no longer waits for ``ticket``: leave the queue, or give back the
        slot it was granted in the meantime."""
        for waiter in self._waiting:
            if waiter.ticket is ticket:
                self._waiting.remove(waiter)
                ticket.cancel()
                return
        if ticket.done() and not ticket.cancelled() and ticket.result():
            self.release()

    def release(self) -> None:
        """Give a slot back: to the waiter who stands highest, if any."""
        self.active -= 1
        while self._waiting and self.active < self.limit:
            best = max(self._waiting, key=lambda w: w.standing())
            self._waiting.remove(best)
            if best.ticket.done():
                continue  # cancelled: its owner stopped waiting, withdraw() is coming
            self.active += 1
            best.ticket.set_result(True)


@dataclasses.dataclass(frozen=True)
class _Waiter:
    standing: Callable[[], float]
    ticket: asyncio.Future[bool]
