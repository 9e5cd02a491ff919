"""The post-quantum hybrid recipient type mlkem768x25519 (age1pq1… / AGE-SECRET-KEY-PQ-1…).

The file key is sealed with HPKE base mode (RFC 9180) using the MLKEM768-X25519
KEM (X-Wing: ML-KEM-768 and X25519, combined with SHA3-256), HKDF-SHA256 and
ChaCha20-Poly1305, info "age-encryption.org/mlkem768x25519". A file sealed this
way stays confidential unless *both* ML-KEM-768 and X25519 fall, so evidence kept
for years is safe from an adversary who records it now and owns a quantum
computer later.

The identity is a 32-byte seed; SHAKE256 expands it into the ML-KEM-768 seed
(d ‖ z) and the X25519 scalar.

Failure classes when unwrapping, as age v1.3 reports them (C2SP CCTV names):
a stanza of another type is ignored; a stanza of this type is a *header failure*
if it has other than one argument, if that argument is not canonical unpadded
base64 of exactly 1120 bytes (ML-KEM-768 ciphertext ‖ X25519 share), if its body
is not exactly 32 bytes (checked before any decryption, against partitioning
oracles), or if the X25519 share is a low-order point (the HPKE decapsulation
fails: X25519 refuses an all-zero shared secret, as the X25519 type does). Any
other well-formed stanza that does not open is *no match*: ML-KEM rejects
implicitly, so a stanza for another key, a corrupted ciphertext or a wrong tag
all surface only at the AEAD.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Sequence

from . import _bech32
from ._errors import HeaderError
from ._format import Stanza, b64decode_strict, b64encode_raw
from ._primitives import (
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_SIZE,
    DecryptionFailed,
    LowOrderPoint,
    aead_open_nonce,
    aead_seal_nonce,
    hkdf_expand,
    hkdf_extract,
    mlkem768_decapsulate,
    mlkem768_encapsulate,
    mlkem768_public_from_seed,
    sha3_256,
    shake256,
    x25519_base,
    x25519_check_public,
    x25519_exchange,
)
from ._recipient import FILE_KEY_SIZE

__all__ = ["HybridIdentity", "HybridRecipient"]

_TYPE = "mlkem768x25519"
_INFO = b"age-encryption.org/mlkem768x25519"
_RECIPIENT_HRP = "age1pq"
_IDENTITY_HRP = "age-secret-key-pq-"
_PUBLIC_SIZE = MLKEM768_PUBLIC_SIZE + 32
_ENC_SIZE = MLKEM768_CIPHERTEXT_SIZE + 32
_XWING_LABEL = b"\\.//^\\"
# RFC 9180 suite: KEM 0x647a (MLKEM768-X25519), KDF 0x0001 (HKDF-SHA256), AEAD 0x0003.
_SUITE_ID = b"HPKE" + struct.pack(">HHH", 0x647A, 0x0001, 0x0003)


def _expand_seed(seed: bytes) -> tuple[bytes, bytes]:
    expanded = shake256(seed, 96)
    return expanded[:64], expanded[64:]


def _combine(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    return sha3_256(ss_m + ss_x + ct_x + pk_x + _XWING_LABEL)


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hkdf_extract(salt, b"HPKE-v1" + _SUITE_ID + label + ikm)


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = struct.pack(">H", length) + b"HPKE-v1" + _SUITE_ID + label + info
    return hkdf_expand(prk, labeled, length)


def _key_schedule(shared_secret: bytes) -> tuple[bytes, bytes]:
    """HPKE base-mode key and nonce (no PSK) for age's info string."""
    psk_id_hash = _labeled_extract(b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(b"", b"info_hash", _INFO)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(shared_secret, b"secret", b"")
    key = _labeled_expand(secret, b"key", context, 32)
    nonce = _labeled_expand(secret, b"base_nonce", context, 12)
    return key, nonce


class HybridRecipient:
    label = "postquantum"
    __slots__ = ("_public",)

    def __init__(self, public: bytes) -> None:
        if len(public) != _PUBLIC_SIZE:
            raise ValueError("an mlkem768x25519 public key is 1216 bytes")
        try:
            # The FIPS 203 check (every coefficient below q) runs when a key is loaded,
            # so one encapsulation now refuses at parsing, as age does, a key that
            # would otherwise only fail when a report is encrypted to it.
            mlkem768_encapsulate(public[:MLKEM768_PUBLIC_SIZE])
        except ValueError:
            raise ValueError("the ML-KEM-768 part of the public key is malformed") from None
        x25519_check_public(public[MLKEM768_PUBLIC_SIZE:])
        self._public = public

    @classmethod
    def parse(cls, text: str) -> HybridRecipient:
        data = _bech32.decode_key(
            text,
            _RECIPIENT_HRP,
            upper=False,
            kind="recipient",
            expected="a post-quantum recipient (age1pq1…)",
        )
        return cls(data)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def wrap(self, file_key: bytes) -> list[Stanza]:
        pk_m, pk_x = self._public[:MLKEM768_PUBLIC_SIZE], self._public[MLKEM768_PUBLIC_SIZE:]
        ss_m, ct_m = mlkem768_encapsulate(pk_m)
        ephemeral = secrets.token_bytes(32)
        ct_x = x25519_base(ephemeral)
        ss_x = x25519_exchange(ephemeral, pk_x)
        key, nonce = _key_schedule(_combine(ss_m, ss_x, ct_x, pk_x))
        body = aead_seal_nonce(key, nonce, file_key)
        return [Stanza(_TYPE, (b64encode_raw(ct_m + ct_x).decode(),), body)]

    def __str__(self) -> str:
        return _bech32.encode(_RECIPIENT_HRP, self._public)

    def __repr__(self) -> str:
        return f"HybridRecipient({str(self)[:24]}…)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridRecipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)


class HybridIdentity:
    __slots__ = ("_mlkem_seed", "_public", "_seed", "_x25519_private", "_x25519_public")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an mlkem768x25519 identity is a 32-byte seed")
        self._seed = seed
        self._mlkem_seed, self._x25519_private = _expand_seed(seed)
        self._x25519_public = x25519_base(self._x25519_private)
        self._public = mlkem768_public_from_seed(self._mlkem_seed) + self._x25519_public

    @classmethod
    def generate(cls) -> HybridIdentity:
        return cls(secrets.token_bytes(32))

    @classmethod
    def parse(cls, text: str) -> HybridIdentity:
        data = _bech32.decode_key(
            text,
            _IDENTITY_HRP,
            upper=True,
            kind="identity",
            expected="a post-quantum identity (AGE-SECRET-KEY-PQ-1…)",
        )
        return cls(data)

    def recipient(self) -> HybridRecipient:
        return HybridRecipient(self._public)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != _TYPE:
                continue
            if len(stanza.args) != 1:
                raise HeaderError("mlkem768x25519 stanza must have exactly one argument")
            try:
                enc = b64decode_strict(stanza.args[0])
            except ValueError:
                raise HeaderError("mlkem768x25519 enc is not canonical base64") from None
            if len(enc) != _ENC_SIZE:
                raise HeaderError("mlkem768x25519 enc has the wrong length")
            if len(stanza.body) != FILE_KEY_SIZE + 16:
                raise HeaderError("mlkem768x25519 body is not a sealed 16-byte file key")
            ct_m, ct_x = enc[:MLKEM768_CIPHERTEXT_SIZE], enc[MLKEM768_CIPHERTEXT_SIZE:]
            ss_m = mlkem768_decapsulate(self._mlkem_seed, ct_m)
            try:
                ss_x = x25519_exchange(self._x25519_private, ct_x)
            except LowOrderPoint:
                # No honest sender produces this share, and the reference's HPKE
                # decapsulation fails on it (X25519 refuses the all-zero secret), so
                # it is a malformed stanza, as in the X25519 type, not someone else's.
                raise HeaderError("mlkem768x25519 X25519 share is a low-order point") from None
            key, nonce = _key_schedule(_combine(ss_m, ss_x, ct_x, self._x25519_public))
            try:
                return aead_open_nonce(key, nonce, stanza.body)
            except DecryptionFailed:
                continue
        return None

    def __str__(self) -> str:
        return _bech32.encode(_IDENTITY_HRP, self._seed, upper=True)

    def __repr__(self) -> str:
        return "HybridIdentity(…)"
