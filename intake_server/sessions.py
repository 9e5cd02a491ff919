"""Source sessions: in server memory only, opaque tokens, idle expiry, wiped on logout.

A session holds what a logged-in source's requests need: the source id and the
reply identity derived from the codename (to decrypt replies in memory), and with a
post-quantum keyring the post-quantum reply identity too. None of it
is written anywhere: a restart logs every source out, which is the point.

The cookie carries a random token (256 bits from ``secrets``) and nothing else. The
store is keyed by the token's SHA-256, so a dictionary lookup's timing depends on a
hash the client cannot steer, not on the token itself.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from keys.age import HybridIdentity, Identity, X25519Identity

__all__ = ["IDLE_SECONDS", "Session", "SessionStore"]

IDLE_SECONDS = 30 * 60


@dataclass(repr=False)
class Session:
    source_id: str
    reply_identity: X25519Identity
    reply_pq_identity: HybridIdentity | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_used: float = 0.0

    @property
    def reply_recipient(self) -> str:
        """The X25519 reply recipient: the source's reply address on the server as well."""
        return str(self.reply_identity.recipient())

    @property
    def reply_recipient_pq(self) -> str | None:
        pq = self.reply_pq_identity
        return str(pq.recipient()) if pq is not None else None

    @property
    def reply_identities(self) -> list[Identity]:
        """What opens this source's replies: a classic desk's and a post-quantum desk's."""
        pq = self.reply_pq_identity
        return [self.reply_identity] if pq is None else [self.reply_identity, pq]

    def __repr__(self) -> str:
        return "Session(<secret>)"


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class SessionStore:
    """Bounded: past ``max_sessions`` the least recently used session is dropped."""

    def __init__(self, *, idle_seconds: float = IDLE_SECONDS, max_sessions: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle_seconds
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, source_id: str, reply_identity: X25519Identity,
               reply_pq_identity: HybridIdentity | None = None) -> tuple[str, Session]:
        self._expire()
        token = secrets.token_urlsafe(32)
        session = Session(source_id, reply_identity, reply_pq_identity,
                          last_used=self._clock())
        self._sessions[_key(token)] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 128:
            return None
        self._expire()
        key = _key(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        session.last_used = self._clock()
        self._sessions.move_to_end(key)
        return session

    def delete(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_key(token), None)

    def _expire(self) -> None:
        now = self._clock()
        while self._sessions:
            key, session = next(iter(self._sessions.items()))
            if now - session.last_used < self._idle:
                break
            del self._sessions[key]
