"""Sessions and the global rate limit, driven by a fake clock (no sleeping)."""

from __future__ import annotations

from intake_server.ratelimit import TokenBucket
from intake_server.sessions import SessionStore
from keys.age import X25519Identity


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_after_idle_time_and_on_logout() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=1800, clock=clock)
    identity = X25519Identity.generate()
    token, session = store.create("ab" * 32, identity)
    assert store.get(token) is session
    clock.now += 1799
    assert store.get(token) is session  # use refreshes the idle timer
    clock.now += 1799
    assert store.get(token) is session
    clock.now += 1800
    assert store.get(token) is None
    token, _ = store.create("ab" * 32, identity)
    store.delete(token)
    assert store.get(token) is None
    assert len(store) == 0


def test_tokens_are_random_opaque_and_carry_nothing() -> None:
    store = SessionStore()
    identity = X25519Identity.generate()
    tokens = {store.create("cd" * 32, identity)[0] for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert "cd" * 8 not in token
        assert str(identity) not in token
        assert len(token) >= 43  # 256 bits
    assert store.get("x" * 500) is None
    assert store.get(None) is None
    assert "AGE-SECRET" not in repr(store.get(next(iter(tokens))))


def test_store_is_bounded() -> None:
    store = SessionStore(max_sessions=3)
    identity = X25519Identity.generate()
    first, _ = store.create("a" * 64, identity)
    for _ in range(3):
        store.create("b" * 64, identity)
    assert len(store) == 3
    assert store.get(first) is None


def test_token_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_second=0.5, burst=3, clock=clock)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    clock.now += 2
    assert bucket.try_take()
    assert not bucket.try_take()
    clock.now += 100
    assert sum(bucket.try_take() for _ in range(10)) == 3
