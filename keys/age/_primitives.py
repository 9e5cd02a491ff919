"""The only module of keys.age that touches cryptography.hazmat.

Every primitive the age format needs, behind small functions with fixed
parameters, so that the format code above never chooses an algorithm, a length
or a nonce by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "AEAD_TAG_SIZE",
    "Aead",
    "DecryptionFailed",
    "LowOrderPoint",
    "MLKEM768_CIPHERTEXT_SIZE",
    "MLKEM768_PUBLIC_SIZE",
    "aead_open_once",
    "aead_seal_once",
    "hkdf_expand",
    "hkdf_extract",
    "hkdf_sha256",
    "hmac_sha256",
    "hmac_verify",
    "mlkem768_decapsulate",
    "mlkem768_encapsulate",
    "mlkem768_public_from_seed",
    "scrypt",
    "sha3_256",
    "shake256",
    "x25519_base",
    "x25519_check_public",
    "x25519_exchange",
]

AEAD_TAG_SIZE = 16
MLKEM768_PUBLIC_SIZE = 1184
MLKEM768_CIPHERTEXT_SIZE = 1088
_ZERO_NONCE = bytes(12)


class DecryptionFailed(Exception):
    """An AEAD tag did not verify."""


class LowOrderPoint(ValueError):
    """An X25519 exchange produced the all-zero shared secret (a low-order point)."""


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    # RFC 5869: Extract is HMAC-Hash(salt, IKM), with an empty salt meaning HashLen zeros
    # (which HMAC pads to the same key).
    return hmac.digest(salt, ikm, "sha256")


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(prk)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def hmac_verify(key: bytes, message: bytes, mac: bytes) -> bool:
    return hmac.compare_digest(hmac_sha256(key, message), mac)


def sha3_256(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


def shake256(data: bytes, length: int) -> bytes:
    return hashlib.shake_256(data).digest(length)


class Aead:
    """ChaCha20-Poly1305 under one key, for the STREAM payload.

    The caller supplies each nonce; STREAM guarantees it never repeats under a key.
    """

    __slots__ = ("_cipher",)

    def __init__(self, key: bytes) -> None:
        self._cipher = ChaCha20Poly1305(key)

    def seal(self, nonce: bytes, plaintext: bytes | bytearray | memoryview) -> bytes:
        return self._cipher.encrypt(nonce, plaintext, None)

    def seal_into(
        self, nonce: bytes, plaintext: bytes | bytearray | memoryview, out: memoryview
    ) -> int:
        """Seals into a caller-owned buffer (no allocation per chunk); returns the length."""
        size = len(plaintext) + AEAD_TAG_SIZE
        self._cipher.encrypt_into(nonce, plaintext, None, out[:size])
        return size

    def open_into(
        self, nonce: bytes, ciphertext: bytes | bytearray | memoryview, out: memoryview
    ) -> int:
        size = len(ciphertext) - AEAD_TAG_SIZE
        try:
            self._cipher.decrypt_into(nonce, ciphertext, None, out[:size])
        except InvalidTag:
            raise DecryptionFailed from None
        return size

    def open(self, nonce: bytes, ciphertext: bytes | memoryview) -> bytes:
        try:
            return self._cipher.decrypt(nonce, ciphertext, None)
        except InvalidTag:
            raise DecryptionFailed from None


def aead_seal_once(key: bytes, plaintext: bytes) -> bytes:
    # A zero nonce is safe only because every caller derives a fresh key for a
    # single message (age wraps each file key under a one-time key).
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, plaintext, None)


def aead_open_once(key: bytes, ciphertext: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, ciphertext, None)
    except InvalidTag:
        raise DecryptionFailed from None


def aead_seal_nonce(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, None)


def aead_open_nonce(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, None)
    except InvalidTag:
        raise DecryptionFailed from None


def x25519_base(private: bytes) -> bytes:
    """The X25519 public key of a 32-byte private scalar."""
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_exchange(private: bytes, peer_public: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    try:
        shared = key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        # OpenSSL refuses low-order points (all-zero result); age requires the refusal.
        raise LowOrderPoint from None
    if not hmac.compare_digest(shared, bytes(32)):
        return shared
    raise LowOrderPoint


def x25519_check_public(public: bytes) -> None:
    """Refuse a low-order public key: every shared secret with it is zero, so nothing
    encrypted to it would be confidential. Raises ValueError (LowOrderPoint)."""
    try:
        x25519_exchange(secrets.token_bytes(32), public)
    except LowOrderPoint:
        raise LowOrderPoint("the X25519 key is a low-order point") from None


def scrypt(passphrase: bytes, salt: bytes, log_n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log_n, r=8, p=1).derive(passphrase)


def mlkem768_public_from_seed(seed64: bytes) -> bytes:
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed64).public_key().public_bytes_raw()


def mlkem768_encapsulate(public: bytes) -> tuple[bytes, bytes]:
    """Returns (shared secret, ciphertext). Raises ValueError on a malformed key."""
    shared, ciphertext = mlkem.MLKEM768PublicKey.from_public_bytes(public).encapsulate()
    return shared, ciphertext


def mlkem768_decapsulate(seed64: bytes, ciphertext: bytes) -> bytes:
    # ML-KEM decapsulation never fails on a well-sized ciphertext: a forged one yields
    # an unrelated (implicitly rejected) secret, caught later by the HPKE AEAD.
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed64).decapsulate(ciphertext)
