"""The pace floor a request body must keep, on both apps.

A client that sends its body slower than MIN_BYTES_PER_SECOND on average, after a
grace of PACE_GRACE_SECONDS, is dropped (408): every Tor client reaches the server
from 127.0.0.1, so a handful of tricklers could otherwise hold every upload slot and
connection for as long as they liked (issue 13, item 14). The bytes counted are
those the client has sent (received by the server, read or not), and a timer checks
them while the handler waits, so that a client that sends nothing is dropped as
surely as one that trickles. Only time the client could send counts: not once its
whole body has arrived, nor while the server holds as much of it unread as it
buffers and has stopped reading the connection (issue 18: 19 of 32 concurrent
submitters got 408 while they waited, whole, for an upload slot).

Used by upload.Limits (the source app's reports and follow-ups) and by the staff
app's bundle uploads.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

__all__ = ["MIN_BYTES_PER_SECOND", "PACE_CREDIT_SECONDS", "PACE_GRACE_SECONDS", "Pace"]

# The pace a request body must keep: MIN_BYTES_PER_SECOND, far below any working Tor
# circuit. A body starts with PACE_GRACE_SECONDS of credit (a browser sends the
# first bytes with the head), and can bank at most PACE_CREDIT_SECONDS (the read
# timeout's default): enough to ride out a stalled circuit, not enough to send a
# lot at first and then trickle for days.
MIN_BYTES_PER_SECOND = 1024
PACE_GRACE_SECONDS = 5.0
PACE_CREDIT_SECONDS = 120.0
# How often, at least and at most, the pace timer looks at a body that is keeping up.
# At most: whether the client could send is sampled at each look (Pace._held), so
# a long gap would count a whole wait for a slot against a client that was held
# back for most of it, or the other way round.
_PACE_RECHECK_SECONDS = 0.25
_PACE_RECHECK_MAX_SECONDS = 1.0


class Pace:
    """The pace floor of one request body: a leaky bucket over the bytes the client
    has sent, shared by the source app's uploads (Limits) and the staff app's bundles.

    Credit drains at MIN_BYTES_PER_SECOND while the client could send, and bytes
    received refill it, up to a cap; a body out of credit is dropped (408). ``behind``
    checks it as the body is read, and a timer (``watch``) checks it while the
    handler waits, for a part that never comes as much as for a slot. The bytes that
    arrived with the head, before the handler ran, count as received.
    """

    def __init__(self, request: web.Request) -> None:
        self.credit = MIN_BYTES_PER_SECOND * PACE_GRACE_SECONDS
        self.checked = time.monotonic()
        self._content = request.content
        self._transport = request.transport
        self._received = 0
        self._timer: asyncio.TimerHandle | None = None

    def standing(self) -> float:
        """The pace credit now, in bytes: below zero, the body has fallen behind."""
        now = time.monotonic()
        received = self._content.total_bytes
        owed = 0.0 if self._held() else MIN_BYTES_PER_SECOND * (now - self.checked)
        self.credit = min(self.credit - owed + (received - self._received),
                          MIN_BYTES_PER_SECOND * PACE_CREDIT_SECONDS)
        self.checked, self._received = now, received
        return self.credit

    def behind(self) -> bool:
        """Whether the body has fallen below the floor (never once it is all in)."""
        return self.standing() < 0 and not self._content.is_eof()

    def _held(self) -> bool:
        """Whether the client cannot send now: its whole body has arrived, or the
        server holds as much of it unread as it buffers, and aiohttp has stopped
        reading the connection (a trickler never gets there: it would have to send
        that much first). Time spent so is not counted against the pace."""
        if self._content.is_eof():
            return True
        transport = self._transport
        return transport is not None and not transport.is_closing() \
            and not transport.is_reading()

    def watch(self, timeout: asyncio.Timeout) -> None:
        """Enforce the pace while the handler waits: when the credit runs out,
        ``timeout`` fires (the handler's TimeoutError, answered 408). Stops once the
        client has sent the whole body, so that a report is never dropped while it
        waits for its codename or the disk."""
        loop = asyncio.get_running_loop()

        def check() -> None:
            self._timer = None
            if self._content.is_eof():
                return
            credit = self.standing()
            if credit < 0:
                timeout.reschedule(loop.time())
                return
            wait = min(max(credit / MIN_BYTES_PER_SECOND, _PACE_RECHECK_SECONDS),
                       _PACE_RECHECK_MAX_SECONDS)
            self._timer = loop.call_later(wait, check)

        check()

    def stop(self) -> None:
        """Stop the timer (the body is over, or the request)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
