"""A global token bucket.

Every Tor client reaches the onion service from 127.0.0.1, so per-address limits
mean nothing here: the only meaningful limit is on the whole server. Logins are the
thing worth limiting (each costs an Argon2id derivation); a source who hits the limit
gets a translated "try again later" page, not a silent wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


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
