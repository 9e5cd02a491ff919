"""Ed25519 signatures (libsodium through pynacl), always bound to a context.

A signature made here never covers the caller's bytes alone but::

    b"amana-ed25519-v1\\x00" || u8(len(context)) || context || message

so a signature made for one purpose (a bundle manifest) can never be replayed as a
signature for another (a staff request), even if the two messages happen to be equal.
The contexts in use are listed in :data:`CONTEXTS` and in docs/bundle-format.md; a new
purpose gets a new context string, never a reused one.

Text forms: a verify key is ``ed25519:`` + unpadded base64url of its 32 bytes; a secret
seed is ``AMANA-ED25519-SECRET-KEY:`` + the same encoding of the 32-byte seed. Both are
parsed strictly: wrong prefix, padding, non-canonical base64 or a wrong length is refused.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hmac
import re
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.signing

from keys import fs

__all__ = [
    "CONTEXTS",
    "CONTEXT_BUNDLE",
    "CONTEXT_KEY_TRANSITION",
    "CONTEXT_STAFF_REQUEST",
    "CONTEXT_VAULT",
    "CONTEXT_VAULT_JOURNAL",
    "SIGNATURE_SIZE",
    "BadSignature",
    "KeyFormatError",
    "SigningKey",
    "VerifyKey",
    "parse_verify_key_file",
    "read_verify_key",
]

SIGNATURE_SIZE: Final = 64
_KEY_SIZE: Final = 32
_DOMAIN: Final = b"amana-ed25519-v1\x00"

#: Signs the manifest of a bundle (keys/bundle.py).
CONTEXT_BUNDLE: Final = "amana/bundle/v1"
#: Signs a request to the staff app (intake_server staff API).
CONTEXT_STAFF_REQUEST: Final = "amana/staff-request/v1"
#: Signs the encrypted triage database of a desk's vault (journalist_client/vault.py).
CONTEXT_VAULT: Final = "amana/vault/v1"
#: Signs each record of a vault's change journal (journalist_client/vault_journal.py).
CONTEXT_VAULT_JOURNAL: Final = "amana/vault-journal/v1"
#: Signs a desk's key transition statement, by the old and the new key (keys/transition.py).
CONTEXT_KEY_TRANSITION: Final = "amana/key-transition/v1"
CONTEXTS: Final = frozenset(
    {
        CONTEXT_BUNDLE,
        CONTEXT_STAFF_REQUEST,
        CONTEXT_VAULT,
        CONTEXT_VAULT_JOURNAL,
        CONTEXT_KEY_TRANSITION,
    }
)

_CONTEXT_RE: Final = re.compile(r"[a-z0-9][a-z0-9./-]{0,63}")
_VK_PREFIX: Final = "ed25519:"
_SEED_PREFIX: Final = "AMANA-ED25519-SECRET-KEY:"
_B64_32_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")


class BadSignature(Exception):
    """The signature does not verify for this key, context and message."""


class KeyFormatError(ValueError):
    """A key's text or byte form is malformed."""


def _framed(context: str, message: bytes) -> bytes:
    if not isinstance(context, str) or not _CONTEXT_RE.fullmatch(context):
        raise ValueError(f"invalid signature context {context!r}")
    ctx = context.encode("ascii")
    return _DOMAIN + bytes([len(ctx)]) + ctx + bytes(message)


def _b64_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64_decode_32(text: str, what: str) -> bytes:
    # 32 bytes are exactly 43 unpadded characters; the regex refuses padding, whitespace
    # and the standard alphabet, the re-encoding refuses non-zero trailing bits.
    if not _B64_32_RE.fullmatch(text):
        raise KeyFormatError(f"{what}: expected 43 base64url characters without padding")
    try:
        raw = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{what}: invalid base64url") from None
    if len(raw) != _KEY_SIZE or _b64_encode(raw) != text:
        raise KeyFormatError(f"{what}: non-canonical base64url")
    return raw


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key", "_raw")

    def __init__(self, raw: bytes) -> None:
        raw = bytes(raw)
        if len(raw) != _KEY_SIZE:
            raise KeyFormatError(f"verify key: expected {_KEY_SIZE} bytes, got {len(raw)}")
        # Refuses non-canonical encodings and small-order points, for which a signature
        # would not bind the message to one signer.
        if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
            raise KeyFormatError("verify key: not a valid Ed25519 public key")
        self._raw = raw
        self._key = nacl.signing.VerifyKey(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyKey:
        return cls(raw)

    @classmethod
    def from_text(cls, text: str) -> VerifyKey:
        if not isinstance(text, str) or not text.startswith(_VK_PREFIX):
            raise KeyFormatError(f"verify key: expected text starting with {_VK_PREFIX!r}")
        return cls(_b64_decode_32(text[len(_VK_PREFIX) :], "verify key"))

    @property
    def raw(self) -> bytes:
        return self._raw

    def verify(self, message: bytes, signature: bytes, *, context: str) -> None:
        """Return if ``signature`` is valid for ``message`` under ``context``; else raise."""
        if len(signature) != SIGNATURE_SIZE:
            raise BadSignature(f"signature must be {SIGNATURE_SIZE} bytes, got {len(signature)}")
        try:
            self._key.verify(_framed(context, message), bytes(signature))
        except nacl.exceptions.BadSignatureError:
            raise BadSignature("signature does not verify") from None

    def __str__(self) -> str:
        return _VK_PREFIX + _b64_encode(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyKey):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)


class SigningKey:
    """An Ed25519 private key, held as its 32-byte seed."""

    __slots__ = ("_key", "_seed", "_verify_key")

    def __init__(self, seed: bytes) -> None:
        seed = bytes(seed)
        if len(seed) != _KEY_SIZE:
            raise KeyFormatError(f"signing key seed: expected {_KEY_SIZE} bytes, got {len(seed)}")
        self._seed = seed
        self._key = nacl.signing.SigningKey(seed)
        self._verify_key = VerifyKey(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        return cls(seed)

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        if not isinstance(text, str) or not text.startswith(_SEED_PREFIX):
            raise KeyFormatError(f"signing key: expected text starting with {_SEED_PREFIX!r}")
        return cls(_b64_decode_32(text[len(_SEED_PREFIX) :], "signing key"))

    def to_text(self) -> str:
        return _SEED_PREFIX + _b64_encode(self._seed)

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def verify_key(self) -> VerifyKey:
        return self._verify_key

    def sign(self, message: bytes, *, context: str) -> bytes:
        """Return the 64-byte detached signature of ``message`` under ``context``."""
        signed = self._key.sign(_framed(context, message))
        return bytes(signed.signature)

    def __repr__(self) -> str:
        # Never the seed: reprs end up in logs and tracebacks.
        return f"SigningKey(verify_key={str(self._verify_key)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return hmac.compare_digest(self._seed, other._seed)

    __hash__ = None  # type: ignore[assignment]


# --- server-verify.key -------------------------------------------------------------------

#: Larger than any verify-key file: a comment line and one key are under 200 bytes.
_MAX_KEY_FILE: Final = 4096


def parse_verify_key_file(text: str) -> VerifyKey:
    """The verify key in the text of a key file such as ``server-verify.key``.

    The file ``intake-server init`` writes is a ``#`` comment line and then the key.
    Blank lines and ``#`` lines are skipped, line ends may be CRLF, and exactly one line
    must remain: an ``ed25519:`` key in its strict form. A leading byte-order mark is
    skipped. A secret key is refused without being repeated in the error.
    """
    # A byte-order mark is what some Windows editors put before the first line.
    lines = [line.strip() for line in text.removeprefix("\ufeff").splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if any(line.startswith(_SEED_PREFIX) for line in keys):
        raise KeyFormatError(
            "this is a secret signing key (server-signing.key), not the verify key: "
            "give server-verify.key, and keep the signing key on the server"
        )
    if not keys:
        raise KeyFormatError("no ed25519: key in the text (only comments or blank lines)")
    if len(keys) > 1:
        raise KeyFormatError("more than one line besides comments: expected one ed25519: key")
    return VerifyKey.from_text(keys[0])


def read_verify_key(given: str) -> VerifyKey:
    """A verify key as a person gives it on a command line: the ``ed25519:`` key, the
    content of a key file (comment line included), or the path of such a file.

    Text holding ``ed25519:``, a ``#`` comment or a line break is parsed as the key or
    the file's content; anything else is read as a path (at most 4 KiB, a regular file:
    a FIFO planted in its place is refused, not waited on).
    """
    if "\n" in given or "ed25519:" in given or given.lstrip().startswith(("#", _SEED_PREFIX)):
        return parse_verify_key_file(given)
    try:
        data = fs.read_nofollow(given, max_bytes=_MAX_KEY_FILE)
    except fs.FsError as exc:
        raise KeyFormatError(str(exc)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyFormatError(f"{given}: a symbolic link; give the file itself") from None
        shown = given if len(given) <= 80 else given[:77] + "..."
        raise KeyFormatError(
            f"{shown!r} is neither an ed25519: key nor a readable file ({exc.strerror or exc})"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFormatError(f"{given}: not a text file") from None
    return parse_verify_key_file(text)
