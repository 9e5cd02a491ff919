"""Fingerprints: short, human-comparable digests of a desk's public keys.

A desk fingerprint is SHA-256 over a canonical, domain-separated encoding of the desk's
age recipient and Ed25519 verify key::

    "amana-fingerprint-v1" 0x00 "desk" 0x00
    u32be(len(R)) R            R = the recipient's canonical text ("age1..."), ASCII
    u32be(32) V                V = the verify key's 32 raw bytes

and a bare recipient's is the same with the label ``recipient`` and no V. People see the
first 128 bits as 8 groups of 4 upper-case hex digits (``3F9A 0C11 ...``): to substitute
a key under a fingerprint already published an attacker must find a second preimage
(about 2^128 SHA-256 evaluations), far beyond any state. The reasoning is in
docs/keyring-format.md.
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Final

from keys.age import parse_recipient
from keys.signing import VerifyKey

__all__ = [
    "FINGERPRINT_BITS",
    "FINGERPRINT_RE",
    "desk_fingerprint",
    "fingerprint_qr_payload",
    "recipient_fingerprint",
]

FINGERPRINT_BITS: Final = 128
_GROUPS: Final = FINGERPRINT_BITS // 16
_DOMAIN: Final = b"amana-fingerprint-v1\x00"
FINGERPRINT_RE: Final = re.compile(rf"[0-9A-F]{{4}}(?: [0-9A-F]{{4}}){{{_GROUPS - 1}}}")


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _canonical_recipient(recipient: str) -> bytes:
    # Re-encoding through the parser makes the digest a function of the key, not of how
    # its text happened to be written; a recipient that does not parse raises here.
    return str(parse_recipient(recipient)).encode("ascii")


def _display(digest: bytes) -> str:
    hexdigits = digest[: FINGERPRINT_BITS // 8].hex().upper()
    return " ".join(hexdigits[i : i + 4] for i in range(0, len(hexdigits), 4))


def desk_fingerprint(recipient: str, verify_key: str | VerifyKey) -> str:
    """The fingerprint of a desk, e.g. ``"3F9A 0C11 …"`` (8 groups)."""
    vk = verify_key if isinstance(verify_key, VerifyKey) else VerifyKey.from_text(verify_key)
    h = hashlib.sha256()
    h.update(_DOMAIN + b"desk\x00")
    h.update(_field(_canonical_recipient(recipient)))
    h.update(_field(vk.raw))
    return _display(h.digest())


def recipient_fingerprint(recipient: str) -> str:
    """The fingerprint of a bare age recipient (no signing key)."""
    h = hashlib.sha256()
    h.update(_DOMAIN + b"recipient\x00")
    h.update(_field(_canonical_recipient(recipient)))
    return _display(h.digest())


def fingerprint_qr_payload(fingerprint: str, desk_id: str | None = None) -> str:
    """What a fingerprint QR code encodes: ``amana-fp:v1:<desk id or ->:<32 hex digits>``.

    Compact (a version 3-4 code, easy to scan from a screen) and unambiguous: a phone that
    scans the coalition's printed copy and the source page's copy gets two equal strings.
    """
    if not FINGERPRINT_RE.fullmatch(fingerprint):
        raise ValueError("not a fingerprint in display form")
    return f"amana-fp:v1:{desk_id or '-'}:{fingerprint.replace(' ', '')}"
