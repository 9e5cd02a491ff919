"""Signed requests to the staff app, made by a desk's transfer credential.

A transfer machine is online and holds no decryption key. Each of its requests
carries an Ed25519 signature (context ``amana/staff-request/v1``) over::

    "AMANA-STAFF-REQUEST-V1\\n" METHOD "\\n" PATH?QUERY "\\n" DESK "\\n"
    TIMESTAMP "\\n" NONCE "\\n" SHA256(BODY)

sent in the headers below. The server checks all of it *before* reading the body:
the desk has a registered key, the timestamp is within five minutes of the server's
clock, the nonce was not seen in that window, and the signature verifies; the body,
read afterwards, must then hash to the signed value. A refusal never says which check
failed beyond "not authorised" to the client; the reason is for the server's own log.

This module is pure: no network, no clock of its own (the verifier takes one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from keys import ids
from keys.signing import CONTEXT_STAFF_REQUEST, BadSignature, SigningKey, VerifyKey

__all__ = [
    "EMPTY_BODY_SHA256",
    "HEADERS",
    "MAX_SKEW_SECONDS",
    "AuthError",
    "RequestVerifier",
    "VerifiedRequest",
    "sign_request",
]

H_DESK: Final = "Amana-Desk"
H_TIMESTAMP: Final = "Amana-Timestamp"
H_NONCE: Final = "Amana-Nonce"
H_BODY: Final = "Amana-Content-SHA256"
H_SIGNATURE: Final = "Amana-Signature"
HEADERS: Final = (H_DESK, H_TIMESTAMP, H_NONCE, H_BODY, H_SIGNATURE)

MAX_SKEW_SECONDS: Final = 300
EMPTY_BODY_SHA256: Final = hashlib.sha256(b"").hexdigest()
_MAGIC: Final = b"AMANA-STAFF-REQUEST-V1"
_TIMESTAMP_RE: Final = re.compile(r"[1-9][0-9]{0,11}")
_SHA_RE: Final = re.compile(r"[0-9a-f]{64}")
_SIG_RE: Final = re.compile(r"[A-Za-z0-9_-]{86}")
_PATH_RE: Final = re.compile(r"/[\x21-\x7e]{0,2047}")
_METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD"})


class AuthError(Exception):
    """The request is not authorised. The message is for the server's log only."""


@dataclass(frozen=True)
class VerifiedRequest:
    desk: str
    body_sha256: str


def _canonical(method: str, path: str, desk: str, timestamp: str, nonce: str, body: str) -> bytes:
    fields = [method, path, desk, timestamp, nonce, body]
    return b"\n".join([_MAGIC, *(f.encode("ascii") for f in fields)])


def sign_request(
    key: SigningKey,
    *,
    method: str,
    path: str,
    desk: str,
    body_sha256: str = EMPTY_BODY_SHA256,
    now: float | None = None,
) -> dict[str, str]:
    """The headers that authenticate one request. ``path`` includes the query string."""
    if method not in _METHODS or not _PATH_RE.fullmatch(path):
        raise ValueError("method or path not signable")
    if not ids.is_desk_id(desk) or not _SHA_RE.fullmatch(body_sha256):
        raise ValueError("desk id or body hash malformed")
    timestamp = str(int(time.time() if now is None else now))
    nonce = ids.new_hex_id()
    signature = key.sign(
        _canonical(method, path, desk, timestamp, nonce, body_sha256), context=CONTEXT_STAFF_REQUEST
    )
    return {
        H_DESK: desk,
        H_TIMESTAMP: timestamp,
        H_NONCE: nonce,
        H_BODY: body_sha256,
        H_SIGNATURE: base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii"),
    }


class RequestVerifier:
    """Checks signed requests and remembers nonces for the length of the window.

    The nonce memory is bounded: when it is full of unexpired nonces the verifier
    refuses new requests (fails closed) rather than forgetting one and allowing a replay.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        window: int = MAX_SKEW_SECONDS,
        max_nonces: int = 100_000,
    ) -> None:
        self._clock = clock
        self._window = window
        self._max_nonces = max_nonces
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _field(self, headers: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
        value = headers.get(name)
        if value is None:
            raise AuthError(f"missing {name}")
        if not pattern.fullmatch(value):
            raise AuthError(f"malformed {name}")
        return value

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            nonce, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[nonce]

    def verify(
        self,
        headers: Mapping[str, str],
        *,
        method: str,
        path: str,
        keys_of: Callable[[str], Iterable[VerifyKey]],
    ) -> VerifiedRequest:
        """Verify the headers of a request; ``keys_of(desk)`` gives its registered keys."""
        desk = self._field(headers, H_DESK, ids.DESK_ID_RE)
        timestamp = self._field(headers, H_TIMESTAMP, _TIMESTAMP_RE)
        nonce = self._field(headers, H_NONCE, ids.HEX_ID_RE)
        body = self._field(headers, H_BODY, _SHA_RE)
        encoded = self._field(headers, H_SIGNATURE, _SIG_RE)
        try:
            signature = base64.urlsafe_b64decode(encoded + "==")
        except (binascii.Error, ValueError):
            raise AuthError("malformed signature") from None
        now = self._clock()
        if abs(now - int(timestamp)) > self._window:
            raise AuthError("timestamp outside the allowed window (clock skew or a stale request)")
        message = _canonical(method, path, desk, timestamp, nonce, body)
        for key in keys_of(desk):
            try:
                key.verify(message, signature, context=CONTEXT_STAFF_REQUEST)
            except BadSignature:
                continue
            break
        else:
            raise AuthError("no registered transfer key of this desk signed this request")
        # Only a correctly signed request may take a place in the nonce memory, so that
        # unauthenticated traffic cannot fill it.
        self._forget_expired(now)
        if nonce in self._seen:
            raise AuthError("replayed request (nonce seen before)")
        if len(self._seen) >= self._max_nonces:
            raise AuthError("too many requests in the window")
        self._seen[nonce] = int(timestamp) + self._window + 1
        self._seen.move_to_end(nonce)
        return VerifiedRequest(desk=desk, body_sha256=body)
