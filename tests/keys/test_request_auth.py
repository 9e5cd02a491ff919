"""Signed staff requests: every refusal, and replay protection driven by a fake clock."""

from __future__ import annotations

import hashlib

import pytest

from keys.request_auth import (
    H_BODY,
    H_DESK,
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
    AuthError,
    RequestVerifier,
    sign_request,
)
from keys.signing import SigningKey

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def _verify(
    verifier: RequestVerifier,
    headers: dict[str, str],
    key: SigningKey,
    method: str = "GET",
    path: str = "/v1/desks/triage/bundle?after=",
) -> str:
    return verifier.verify(
        headers,
        method=method,
        path=path,
        keys_of=lambda desk: [key.verify_key] if desk == "triage" else [],
    ).desk


def test_a_signed_request_verifies_once(key: SigningKey) -> None:
    clock = Clock()
    verifier = RequestVerifier(clock=clock)
    headers = sign_request(
        key, method="GET", path="/v1/desks/triage/bundle?after=", desk="triage", now=NOW
    )
    assert _verify(verifier, headers, key) == "triage"
    with pytest.raises(AuthError, match="replayed"):
        _verify(verifier, headers, key)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h.pop(H_SIGNATURE), "missing"),
        (lambda h: h.update({H_SIGNATURE: "A" * 86}), "signed"),
        (lambda h: h.update({H_DESK: "lawyers"}), "signed"),
        (lambda h: h.update({H_BODY: hashlib.sha256(b"x").hexdigest()}), "signed"),
        (lambda h: h.update({H_NONCE: "0" * 32}), "signed"),
        (lambda h: h.update({H_TIMESTAMP: str(int(NOW) + 1)}), "signed"),
        (lambda h: h.update({H_TIMESTAMP: "0" + str(int(NOW))}), "malformed"),
        (lambda h: h.update({H_DESK: "../x"}), "malformed"),
    ],
)
def test_tampering_is_refused(key: SigningKey, change: object, reason: str) -> None:
    headers = sign_request(
        key, method="GET", path="/v1/desks/triage/bundle?after=", desk="triage", now=NOW
    )
    change(headers)  # type: ignore[operator]
    with pytest.raises(AuthError, match=reason):
        _verify(RequestVerifier(clock=Clock()), headers, key)


def test_method_path_and_key_are_bound(key: SigningKey) -> None:
    headers = sign_request(
        key, method="GET", path="/v1/desks/triage/bundle?after=", desk="triage", now=NOW
    )
    with pytest.raises(AuthError, match="signed"):
        _verify(RequestVerifier(clock=Clock()), headers, key, method="POST")
    with pytest.raises(AuthError, match="signed"):
        _verify(RequestVerifier(clock=Clock()), headers, key, path="/v1/desks/triage/bundle?a=9")
    with pytest.raises(AuthError, match="signed"):
        _verify(RequestVerifier(clock=Clock()), headers, SigningKey.generate())


def test_stale_and_future_requests_are_refused_and_nonces_expire(key: SigningKey) -> None:
    clock = Clock()
    verifier = RequestVerifier(clock=clock)
    old = sign_request(key, method="GET", path="/", desk="triage", now=NOW - 301)
    future = sign_request(key, method="GET", path="/", desk="triage", now=NOW + 301)
    for headers in (old, future):
        with pytest.raises(AuthError, match="window"):
            _verify(verifier, headers, key, path="/")
    fresh = sign_request(key, method="GET", path="/", desk="triage", now=NOW)
    _verify(verifier, fresh, key, path="/")
    clock.now += 302  # the nonce is forgotten only once its request is stale anyway
    with pytest.raises(AuthError, match="window"):
        _verify(verifier, fresh, key, path="/")


def test_nonce_memory_is_bounded_and_fails_closed(key: SigningKey) -> None:
    verifier = RequestVerifier(clock=Clock(), max_nonces=3)
    for _ in range(3):
        _verify(
            verifier,
            sign_request(key, method="GET", path="/", desk="triage", now=NOW),
            key,
            path="/",
        )
    with pytest.raises(AuthError, match="too many"):
        _verify(
            verifier,
            sign_request(key, method="GET", path="/", desk="triage", now=NOW),
            key,
            path="/",
        )
