"""Bech32 (BIP 173) as age uses it: no 90-character limit, one case per string.

age keys are Bech32, not Bech32m. Post-quantum recipients are about two
thousand characters long, so the BIP 173 length limit does not apply; the
caller bounds the input length instead.
"""

from __future__ import annotations

__all__ = ["Bech32Error", "decode", "decode_key", "encode"]

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VALUES = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_MAX_LENGTH = 4096


class Bech32Error(ValueError):
    """The string is not valid Bech32."""


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or (acc << (to_bits - bits)) & maxv:
        raise Bech32Error("non-zero or excess padding bits")
    return out


def encode(hrp: str, data: bytes, *, upper: bool = False) -> str:
    hrp = hrp.lower()
    words = _convert_bits(data, 8, 5, pad=True)
    polymod = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    text = hrp + "1" + "".join(_CHARSET[w] for w in words + checksum)
    return text.upper() if upper else text


def decode(text: str) -> tuple[str, bytes]:
    """Returns (human-readable part in lower case, data)."""
    if len(text) > _MAX_LENGTH:
        raise Bech32Error("too long")
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("mixed case")
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise Bech32Error("invalid character")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text):
        raise Bech32Error("missing separator or checksum")
    hrp, rest = text[:sep], text[sep + 1 :]
    try:
        words = [_VALUES[c] for c in rest]
    except KeyError:
        raise Bech32Error("invalid character in data part") from None
    if _polymod([*_hrp_expand(hrp), *words]) != 1:
        raise Bech32Error("invalid checksum")
    return hrp, bytes(_convert_bits(words[:-6], 5, 8, pad=False))


def decode_key(text: str, hrp: str, *, upper: bool, kind: str, expected: str) -> bytes:
    """The data of a key string that must have this HRP and case (age writes recipients
    in lower case and identities in upper case); ValueError naming ``kind`` otherwise."""
    try:
        found, data = decode(text)
    except Bech32Error as exc:
        raise ValueError(f"malformed {kind}: {exc}") from None
    if found != hrp or text != (text.upper() if upper else text.lower()):
        raise ValueError(f"not {expected}")
    return data
