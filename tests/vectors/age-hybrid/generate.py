"""Writes the mlkem768x25519 failure-class vectors in this folder (ours, not upstream's).

Run from the repository root: `.venv/bin/python tests/vectors/age-hybrid/generate.py`.
The output is deterministic: every key, nonce and encapsulation is fixed below, and
tests/keys/age/test_hybrid.py checks that this script still writes the committed
files byte for byte.

Independence: the X-Wing combiner, the HPKE key schedule, the header MAC, the
STREAM payload and the armor are written here again from the specs, on hashlib,
hmac and the bare primitives of keys/age/_primitives.py (ML-KEM, X25519, HKDF,
ChaCha20-Poly1305), so that a mistake in the format code of keys.age cannot vouch
for itself. The Bech32 text of the identities also comes from keys.age.

Every stanza is built from the recipient's side: given an encapsulated key *enc*,
the identity's secret gives the shared secret a sender must have used, and the
file key is sealed under it. No encapsulation randomness is needed, and the one
honest ML-KEM-768 ciphertext (with its X25519 share) is the example stanza of the
age specification (c2sp.org/age, CC BY 4.0), for the specification's example
identity. The shapes that are no sender's output (low-order shares, wrong
lengths) are derived from it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
# (imports after the path: the script runs from any directory)
from keys.age import _bech32  # noqa: E402
from keys.age._primitives import (  # noqa: E402
    LowOrderPoint,
    aead_seal_nonce,
    hkdf_sha256,
    mlkem768_decapsulate,
    x25519_base,
    x25519_exchange,
)

HERE = Path(__file__).resolve().parent

# The example identity and stanza of c2sp.org/age, "mlkem768x25519 recipient stanza".
SPEC_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
SPEC_ENC = (
    "U7E10Aon27j1oDrH7fP3B++SPROSnDVvQpBemzOM+ZcsojxJifUbeeYWejMYKNB+H3rlXNvgtDKf"
    "SCkt78oqncr3faY1JtMj0GQPBZ2g6t8o1cMzZgyLMepeVuTQKxLqnM6L48n8dJL2y0N3i7WSOV6c"
    "sB79r9tcIs88Al9iCwVLpt74OzDXAIwD1QlCAvj75ZEnwtgP6Xr6s+wHg9hLD0OSSQOaTdCqzR5s"
    "hQWyrjVs7GCqd/5WbNGYNaolPQJBu9wTNhHjP9XGCTv8iKXkYwXDYujInkF5hOjpCHE8Vu+9UeMI"
    "+l0GJAEervT51bwaf288GiqgapP5g4HF8V4P0+03B/SwXhvxxZpKjTU2OcFS8I9chtEZ7Ucw5bvP"
    "kC1lyjNnqQXZyc4JnAqbFQTlPGnwbEsm0UGE+v0FOxTBznIivHoPHV++5PuYpombiV/lfYy8BFx0"
    "Hk1igNI3iLNjlIg4MLXNWjN3VROlXIiSsWNXjr/Frh/OE87PXoaKhsDPWfv6akd9PxSDqJMQ4j8k"
    "11kCSOnnU8Rw4TSVnTpt7gfYzBULrMr7qDgyH/TYvp0o7mAq4IaraFJmTqm+LjfAJT4PCQOpnMNR"
    "HLyXZn6mtMUujNv7+zR/I9Vqi+bJdQBwNWdJcUQVarqx2zxV2rM7l+j0gsmxjxp5yAPyALzla7Xz"
    "VvbboLMnHeM+CzN4GoB2PC4neVDSw7Dfs8vbm7f9CeDGvhjWrzcSCOsUCalvH1WkbpE0b9cE/TSJ"
    "qwXFXEc8npTSQWH58RXDALNF3qCbW5LaboD4wCloClEakgljT0s0mTdqIwzj4xtdlX0S2dCtaV5M"
    "HQJiQHGwPvBSCiIsh8ZWJPwZ7Ron7xoWgNI0lXRqhKm7fvFNCzF+Ray2kOyKWHbsMy3a5Zx3yZxC"
    "GFwexAxgYfAH9HJ1raHi1XYGpNpBlDXg47U1y4uU7RBeBb4ewETv/B/p8sGW88tIY87dHM2xHjnn"
    "tGXLvkCIkmjXGNULAVYHxDPJTygxSF7uTVPYCBUk5KeLnDVcgWF8p/wxigza47ptMtpVtm9ZrSEu"
    "9vzOnaTN3KO75RkkLuZszhXfmMZ46NQrdS7Y6duCiN501BnR5BUC4dX4iMxchix6aLN3pKv6UOEw"
    "wcx2aSF4Ib963MAtTPEjhqe+dt0VcTar/08uLWv1kQQueFaEGet4KQ975ZqaoU3PmZH9gqTOumX1"
    "EKf0Pnl0F3NMW+lEOlnCEce99zHBwBf7LV0pLNLDONBxpQySrZUQsNfhAq2Ktf5nG2hcGAMFMWIs"
    "EOuOyzEe+l2aHW4/ojOjU1Oqy4TLzVVRlWmPxQde7qKbvBN7CQhDqJHJA2nphQT/4DOdLqkwRiau"
    "Mmnfx9FI3+hYnX25NpnyvM/Pt94vpsRkhcuttu4/G4xOYTNQd2YWjGwhypZ0oPSiriuTbhj6y2qm"
    "33jiwxvegeDz8CmAIhOEY2JoVpjjX9XzuNR2f5KTLmLzEkOcJQ"
)
SPEC_BODY = "c/k+TjhBA6Je1DF8rxZhe2Jm8CN0zbkV9rre6nA8g98"
# What SPEC_BODY seals (found by opening it; the spec does not print it).
FILE_KEY = bytes.fromhex("df56f61c8e496609c18d25c197451803")

# Our own fixed keys and randomness, each derived from a label so anyone can redo it.
OTHER_SEED = hashlib.sha256(b"amana age-hybrid vectors: another hybrid identity").digest()
X25519_SCALAR = hashlib.sha256(b"amana age-hybrid vectors: an X25519 identity").digest()
PAYLOAD_NONCE = hashlib.sha256(b"amana age-hybrid vectors: payload nonce").digest()[:16]
PLAINTEXT = b"Amana: mlkem768x25519 test vector\n"

MLKEM_CT_SIZE = 1088
ENC_SIZE = MLKEM_CT_SIZE + 32
P25519 = 2**255 - 19
# X25519 u-coordinates whose shared secret with any scalar is all zeros.
LOW_ORDER = {
    "zero": bytes(32),
    "order8": bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    # p + 1 is a non-canonical encoding of u = 1, a point of order 4.
    "noncanonical": (P25519 + 1).to_bytes(32, "little"),
}

_INFO = b"age-encryption.org/mlkem768x25519"
_XWING_LABEL = b"\\.//^\\"
_SUITE = b"HPKE" + struct.pack(">HHH", 0x647A, 0x0001, 0x0003)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


# --- X-Wing (MLKEM768-X25519) decapsulation and HPKE base mode, from the specs --------


def shared_secret(seed: bytes, enc: bytes) -> bytes:
    """The X-Wing shared secret for enc; a low-order share gives an all-zero X25519
    secret here (what a decryptor that forgot to refuse it would compute)."""
    expanded = hashlib.shake_256(seed).digest(96)
    mlkem_seed, x25519_scalar = expanded[:64], expanded[64:]
    ct_m, ct_x = enc[:MLKEM_CT_SIZE], enc[MLKEM_CT_SIZE:]
    ss_m = mlkem768_decapsulate(mlkem_seed, ct_m)
    try:
        ss_x = x25519_exchange(x25519_scalar, ct_x)
    except LowOrderPoint:
        ss_x = bytes(32)
    pk_x = x25519_base(x25519_scalar)
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + _XWING_LABEL).digest()


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, b"HPKE-v1" + _SUITE + label + ikm, "sha256")


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    # HKDF-Expand for at most one block: T(1) = HMAC(prk, info ‖ 0x01).
    labeled = struct.pack(">H", length) + b"HPKE-v1" + _SUITE + label + info
    return hmac.digest(prk, labeled + b"\x01", "sha256")[:length]


def hpke_seal(secret: bytes, plaintext: bytes) -> bytes:
    context = (
        b"\x00"
        + _labeled_extract(b"", b"psk_id_hash", b"")
        + _labeled_extract(b"", b"info_hash", _INFO)
    )
    prk = _labeled_extract(secret, b"secret", b"")
    key = _labeled_expand(prk, b"key", context, 32)
    nonce = _labeled_expand(prk, b"base_nonce", context, 12)
    return aead_seal_nonce(key, nonce, plaintext)


# --- the age file around the stanzas ---------------------------------------------------


def stanza(args: list[str], body: bytes) -> bytes:
    text = b64(body)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append("")  # the body always ends with a short (maybe empty) line
    return ("-> " + " ".join(args) + "\n" + "\n".join(lines) + "\n").encode()


def age_file(
    stanzas: list[bytes], file_key: bytes, *, break_mac: bool = False, break_payload: bool = False
) -> bytes:
    header = b"age-encryption.org/v1\n" + b"".join(stanzas) + b"---"
    mac = hmac.digest(hkdf_sha256(file_key, b"", b"header"), header, "sha256")
    if break_mac:
        mac = mac[:-1] + bytes([mac[-1] ^ 1])
    # One STREAM chunk, the last: counter 0, last-chunk flag 1.
    payload_key = hkdf_sha256(file_key, PAYLOAD_NONCE, b"payload")
    chunk = aead_seal_nonce(payload_key, bytes(11) + b"\x01", PLAINTEXT)
    if break_payload:
        chunk = chunk[:-1] + bytes([chunk[-1] ^ 1])
    return header + b" " + b64(mac).encode() + b"\n" + PAYLOAD_NONCE + chunk


def armor(data: bytes) -> bytes:
    text = base64.b64encode(data).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (
        "-----BEGIN AGE ENCRYPTED FILE-----\n"
        + "\n".join(lines)
        + "\n-----END AGE ENCRYPTED FILE-----\n"
    ).encode()


@dataclass(frozen=True)
class Vector:
    name: str
    expect: str
    comment: str
    file: bytes
    identities: tuple[str, ...]
    file_key: bytes = FILE_KEY
    armored: bool = False

    def encode(self) -> bytes:
        lines = [f"expect: {self.expect}"]
        if self.expect in ("success", "payload failure"):
            released = PLAINTEXT if self.expect == "success" else b""
            lines.append(f"payload: {hashlib.sha256(released).hexdigest()}")
        lines.append(f"file key: {self.file_key.hex()}")
        lines += [f"identity: {i}" for i in self.identities]
        if self.armored:
            lines.append("armored: yes")
        lines.append(f"comment: {self.comment}")
        return ("\n".join(lines) + "\n\n").encode() + self.file


def vectors() -> Iterator[Vector]:
    hrp, seed = _bech32.decode(SPEC_IDENTITY)
    assert hrp == "age-secret-key-pq-"
    other = _bech32.encode("age-secret-key-pq-", OTHER_SEED, upper=True)
    classic = _bech32.encode("age-secret-key-", X25519_SCALAR, upper=True)
    enc, body = b64decode(SPEC_ENC), b64decode(SPEC_BODY)
    assert len(enc) == ENC_SIZE
    good = stanza(["mlkem768x25519", SPEC_ENC], body)

    def one(
        name: str,
        expect: str,
        comment: str,
        stanzas: list[bytes],
        identity: str = SPEC_IDENTITY,
        file_key: bytes = FILE_KEY,
        **kw: bool,
    ) -> Vector:
        return Vector(
            name, expect, comment, age_file(stanzas, file_key, **kw), (identity,), file_key
        )

    def sealed(share: bytes, file_key: bytes = FILE_KEY) -> tuple[bytes, bytes]:
        """enc with this X25519 share, and file_key sealed as a sender would have."""
        new_enc = enc[:MLKEM_CT_SIZE] + share
        return new_enc, hpke_seal(shared_secret(seed, new_enc), file_key)

    # success
    yield one(
        "hybrid_spec_stanza",
        "success",
        "the example stanza of the age spec, for the spec's example identity",
        [good],
    )
    high_bit = bytearray(enc[MLKEM_CT_SIZE:])
    high_bit[31] |= 0x80
    high_enc, high_body = sealed(bytes(high_bit))
    yield one(
        "hybrid_share_high_bit",
        "success",
        "the X25519 share has its top bit set: X25519 ignores that bit (RFC 7748) "
        "and the combiner hashes the share as sent",
        [stanza(["mlkem768x25519", b64(high_enc)], high_body)],
    )
    yield Vector(
        "hybrid_armored",
        "success",
        "the spec stanza, ASCII-armored",
        armor(age_file([good], FILE_KEY)),
        (SPEC_IDENTITY,),
        armored=True,
    )

    # no match: well-formed stanzas that this identity cannot open
    yield one(
        "hybrid_other_identity",
        "no match",
        "a well-formed stanza for another hybrid identity",
        [good],
        identity=other,
    )
    yield one(
        "hybrid_x25519_identity",
        "no match",
        "an X25519 identity ignores mlkem768x25519 stanzas",
        [good],
        identity=classic,
    )
    yield one(
        "hybrid_type_uppercase",
        "no match",
        "stanza types are case-sensitive: MLKEM768X25519 is another type",
        [stanza(["MLKEM768X25519", SPEC_ENC], body)],
    )
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    yield one(
        "hybrid_bad_tag",
        "no match",
        "the ChaCha20-Poly1305 tag of the stanza body is wrong",
        [stanza(["mlkem768x25519", SPEC_ENC], tampered)],
    )
    zero_ct = b64(bytes(MLKEM_CT_SIZE) + enc[MLKEM_CT_SIZE:])
    yield one(
        "hybrid_mlkem_ciphertext_zero",
        "no match",
        "the ML-KEM ciphertext is all zeros: ML-KEM rejects implicitly, so only the AEAD notices",
        [stanza(["mlkem768x25519", zero_ct], body)],
    )

    # header failure: malformed stanzas of this type
    yield one(
        "hybrid_no_argument",
        "header failure",
        "the stanza has no enc argument",
        [stanza(["mlkem768x25519"], body)],
    )
    yield one(
        "hybrid_extra_argument",
        "header failure",
        "the stanza has a second argument",
        [stanza(["mlkem768x25519", SPEC_ENC, "AAAA"], body)],
    )
    yield one(
        "hybrid_enc_padded",
        "header failure",
        "enc is base64 with = padding",
        [stanza(["mlkem768x25519", base64.b64encode(enc).decode()], body)],
    )
    urlsafe = SPEC_ENC.replace("+", "-").replace("/", "_")
    yield one(
        "hybrid_enc_urlsafe",
        "header failure",
        "enc uses the URL-safe base64 alphabet",
        [stanza(["mlkem768x25519", urlsafe], body)],
    )
    for name, size, what in [
        ("hybrid_enc_short", ENC_SIZE - 1, "enc lacks its last byte (1119 bytes)"),
        ("hybrid_enc_mlkem_only", MLKEM_CT_SIZE, "enc is the ML-KEM ciphertext alone"),
        ("hybrid_enc_x25519_only", 32, "enc is a bare 32-byte X25519 share"),
    ]:
        short = enc[:size] if size != 32 else enc[MLKEM_CT_SIZE:]
        yield one(name, "header failure", what, [stanza(["mlkem768x25519", b64(short)], body)])
    for name, key, what in [
        ("hybrid_body_short", FILE_KEY[:15], "a 15-byte file key, sealed"),
        ("hybrid_body_long", FILE_KEY + b"\x00", "a 17-byte file key, sealed"),
    ]:
        key_body = hpke_seal(shared_secret(seed, enc), key)
        yield one(
            name,
            "header failure",
            f"{what}: the body length must be checked before decrypting",
            [stanza(["mlkem768x25519", SPEC_ENC], key_body)],
            file_key=key,
        )
    yield one(
        "hybrid_body_empty",
        "header failure",
        "the stanza body is empty",
        [stanza(["mlkem768x25519", SPEC_ENC], b"")],
    )
    for label, point in LOW_ORDER.items():
        low_enc, low_body = sealed(point)
        yield one(
            f"hybrid_low_order_{label}",
            "header failure",
            f"the X25519 share is a low-order point ({label}); the body is sealed "
            "with the all-zero X25519 secret, so only the refusal catches it",
            [stanza(["mlkem768x25519", b64(low_enc)], low_body)],
        )
    yield one(
        "hybrid_malformed_before_match",
        "header failure",
        "a malformed stanza of this type comes before one that opens",
        [stanza(["mlkem768x25519", SPEC_ENC, "AAAA"], body), good],
    )

    # the layers above the stanza, reached through a hybrid identity
    yield one("hybrid_bad_mac", "HMAC failure", "the header MAC is wrong", [good], break_mac=True)
    yield one(
        "hybrid_payload_bad_tag",
        "payload failure",
        "the tag of the only payload chunk is wrong",
        [good],
        break_payload=True,
    )
    yield Vector(
        "hybrid_armor_trailing_garbage",
        "armor failure",
        "text follows the armor's END line",
        armor(age_file([good], FILE_KEY)) + b"garbage\n",
        (SPEC_IDENTITY,),
        armored=True,
    )


def main() -> None:
    for vector in vectors():
        (HERE / vector.name).write_bytes(vector.encode())


if __name__ == "__main__":
    main()
