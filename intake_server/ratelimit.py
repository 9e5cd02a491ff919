"""Server-wide limits: a token bucket for logins, slots for uploads in progress.

Every Tor client reaches the onion service from 127.0.0.1, so per-address limits
mean nothing here: the only meaningful limit is on the whole server. Logins are the
thing worth limiting (each costs an Argon2id derivation); a source who hits the limit
gets a translated "try again later" page, not a silent wait.
"""

from __future__ import annotations

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
    """Counts uploads in progress against config.max_concurrent_uploads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1
