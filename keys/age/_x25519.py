"""The X25519 recipient type (age1… / AGE-SECRET-KEY-1…)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from . import _bech32
from ._errors import HeaderError
from ._format import Stanza, b64decode_strict, b64encode_raw
from ._primitives import (
    DecryptionFailed,
    LowOrderPoint,
    aead_open_once,
    aead_seal_once,
    hkdf_sha256,
    x25519_base,
    x25519_check_public,
    x25519_exchange,
)
from ._recipient import FILE_KEY_SIZE

__all__ = ["X25519Identity", "X25519Recipient"]

_INFO = b"age-encryption.org/v1/X25519"
_RECIPIENT_HRP = "age"
_IDENTITY_HRP = "age-secret-key-"
_WRAPPED_SIZE = FILE_KEY_SIZE + 16


class X25519Recipient:
    label = "classic"
    __slots__ = ("_public",)

    def __init__(self, public: bytes) -> None:
        if len(public) != 32:
            raise ValueError("an X25519 public key is 32 bytes")
        x25519_check_public(public)
        self._public = public

    @classmethod
    def parse(cls, text: str) -> X25519Recipient:
        data = _bech32.decode_key(
            text,
            _RECIPIENT_HRP,
            upper=False,
            kind="recipient",
            expected="an X25519 recipient (age1…)",
        )
        return cls(data)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def wrap(self, file_key: bytes) -> list[Stanza]:
        ephemeral = secrets.token_bytes(32)
        share = x25519_base(ephemeral)
        shared = x25519_exchange(ephemeral, self._public)
        wrap_key = hkdf_sha256(shared, share + self._public, _INFO)
        body = aead_seal_once(wrap_key, file_key)
        return [Stanza("X25519", (b64encode_raw(share).decode(),), body)]

    def __str__(self) -> str:
        return _bech32.encode(_RECIPIENT_HRP, self._public)

    def __repr__(self) -> str:
        return f"X25519Recipient({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)


class X25519Identity:
    __slots__ = ("_private", "_public")

    def __init__(self, private: bytes) -> None:
        if len(private) != 32:
            raise ValueError("an X25519 identity is 32 bytes")
        self._private = private
        self._public = x25519_base(private)

    @classmethod
    def generate(cls) -> X25519Identity:
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_bytes(cls, private: bytes) -> X25519Identity:
        """An identity from 32 uniformly random bytes (for example a KDF output)."""
        return cls(private)

    @classmethod
    def parse(cls, text: str) -> X25519Identity:
        data = _bech32.decode_key(
            text,
            _IDENTITY_HRP,
            upper=True,
            kind="identity",
            expected="an X25519 identity (AGE-SECRET-KEY-1…)",
        )
        return cls(data)

    def recipient(self) -> X25519Recipient:
        return X25519Recipient(self._public)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != "X25519":
                continue
            if len(stanza.args) != 1:
                raise HeaderError("X25519 stanza must have exactly one argument")
            try:
                share = b64decode_strict(stanza.args[0])
            except ValueError:
                raise HeaderError("X25519 share is not canonical base64") from None
            if len(share) != 32:
                raise HeaderError("X25519 share is not 32 bytes")
            if len(stanza.body) != _WRAPPED_SIZE:
                raise HeaderError("X25519 stanza body is not a wrapped 16-byte file key")
            try:
                shared = x25519_exchange(self._private, share)
            except LowOrderPoint:
                raise HeaderError("X25519 share is a low-order point") from None
            wrap_key = hkdf_sha256(shared, share + self._public, _INFO)
            try:
                return aead_open_once(wrap_key, stanza.body)
            except DecryptionFailed:
                continue
        return None

    def __str__(self) -> str:
        return _bech32.encode(_IDENTITY_HRP, self._private, upper=True)

    def __repr__(self) -> str:
        # Never print the secret by accident (logs, tracebacks).
        return f"X25519Identity(recipient={self.recipient()})"
