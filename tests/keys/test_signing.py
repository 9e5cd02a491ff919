"""Ed25519 signatures: round trip, tampering, context separation, strict key text."""

from __future__ import annotations

import base64

import pytest

from keys.signing import (
    CONTEXT_BUNDLE,
    CONTEXT_STAFF_REQUEST,
    BadSignature,
    KeyFormatError,
    SigningKey,
    VerifyKey,
)


def test_round_trip_and_deterministic_from_seed() -> None:
    sk = SigningKey.from_seed(bytes(range(32)))
    sig = sk.sign(b"manifest", context=CONTEXT_BUNDLE)
    assert len(sig) == 64
    sk.verify_key.verify(b"manifest", sig, context=CONTEXT_BUNDLE)
    # Ed25519 is deterministic: same seed, same message, same signature.
    assert SigningKey.from_seed(bytes(range(32))).sign(b"manifest", context=CONTEXT_BUNDLE) == sig
    assert sk.seed == bytes(range(32))


def test_generate_gives_distinct_keys() -> None:
    assert SigningKey.generate().verify_key != SigningKey.generate().verify_key


@pytest.mark.parametrize("position", [0, 31, 63])
def test_tampered_signature_is_rejected(position: int) -> None:
    sk = SigningKey.generate()
    sig = bytearray(sk.sign(b"m", context=CONTEXT_BUNDLE))
    sig[position] ^= 0x01
    with pytest.raises(BadSignature):
        sk.verify_key.verify(b"m", bytes(sig), context=CONTEXT_BUNDLE)


def test_tampered_message_and_wrong_key_are_rejected() -> None:
    sk = SigningKey.generate()
    sig = sk.sign(b"delete submission 1", context=CONTEXT_BUNDLE)
    with pytest.raises(BadSignature):
        sk.verify_key.verify(b"delete submission 2", sig, context=CONTEXT_BUNDLE)
    with pytest.raises(BadSignature):
        SigningKey.generate().verify_key.verify(b"delete submission 1", sig, context=CONTEXT_BUNDLE)
    with pytest.raises(BadSignature):
        sk.verify_key.verify(b"delete submission 1", sig[:63], context=CONTEXT_BUNDLE)


def test_context_separation() -> None:
    sk = SigningKey.generate()
    sig = sk.sign(b"same bytes", context=CONTEXT_BUNDLE)
    with pytest.raises(BadSignature):
        sk.verify_key.verify(b"same bytes", sig, context=CONTEXT_STAFF_REQUEST)


def test_context_is_length_prefixed_not_concatenated() -> None:
    # Without the length byte, ("a/b", "c" + m) and ("a/bc", m) would sign the same bytes.
    sk = SigningKey.generate()
    sig = sk.sign(b"cmessage", context="a/b")
    with pytest.raises(BadSignature):
        sk.verify_key.verify(b"message", sig, context="a/bc")


@pytest.mark.parametrize("context", ["", "UPPER", "spaces here", "x" * 65, "nul\x00", "é"])
def test_bad_contexts_are_refused(context: str) -> None:
    with pytest.raises(ValueError, match="context"):
        SigningKey.generate().sign(b"m", context=context)


def test_verify_key_text_round_trip() -> None:
    vk = SigningKey.generate().verify_key
    text = str(vk)
    assert text.startswith("ed25519:")
    assert len(text) == len("ed25519:") + 43
    assert VerifyKey.from_text(text) == vk


def _vk_text(raw: bytes) -> str:
    return "ed25519:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t + "=",  # padding
        lambda t: t.replace("ed25519:", "ED25519:"),
        lambda t: t.replace("ed25519:", "ed25519: "),
        lambda t: t + "A",
        lambda t: t[:-1],
        lambda t: " " + t,
        lambda t: t.replace("-", "+").replace("_", "/") if ("-" in t or "_" in t) else t + "+",
    ],
)
def test_verify_key_text_is_strict(mutate: object) -> None:
    text = str(SigningKey.from_seed(b"\x07" * 32).verify_key)
    assert callable(mutate)
    bad = mutate(text)
    assert bad != text
    with pytest.raises(KeyFormatError):
        VerifyKey.from_text(bad)


def test_non_canonical_trailing_bits_are_refused() -> None:
    text = str(SigningKey.from_seed(b"\x01" * 32).verify_key)
    last = text[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The last of 43 characters carries 4 data bits and 2 must-be-zero bits.
    sibling = alphabet[alphabet.index(last) ^ 1]
    with pytest.raises(KeyFormatError, match="non-canonical"):
        VerifyKey.from_text(text[:-1] + sibling)


def test_small_order_and_invalid_points_are_refused() -> None:
    identity_point = bytes([1]) + bytes(31)
    with pytest.raises(KeyFormatError, match="not a valid"):
        VerifyKey.from_text(_vk_text(identity_point))
    with pytest.raises(KeyFormatError):
        VerifyKey(bytes(31))


def test_signing_key_text_and_repr_hides_seed() -> None:
    sk = SigningKey.generate()
    assert SigningKey.from_text(sk.to_text()) == sk
    assert sk.seed.hex() not in repr(sk)
    assert sk.to_text().split(":", 1)[1] not in repr(sk)
    with pytest.raises(KeyFormatError):
        SigningKey.from_text(sk.to_text() + "=")
    with pytest.raises(KeyFormatError):
        SigningKey.from_seed(b"short")
