"""The age v1 header: stanzas, the MAC line, and their strict parsing.

Parsing is canonical-only: every accepted header re-encodes to exactly the
bytes that were read, so the MAC can be checked over the bytes as received.
Anything else (padding in base64, non-canonical trailing bits, CR characters,
empty arguments, over-long lines) is a HeaderError.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ._errors import HeaderError
from ._io import LineSource

__all__ = [
    "INTRO",
    "MAC_PREFIX",
    "Header",
    "Stanza",
    "b64decode_strict",
    "b64encode_raw",
    "encode_header_without_mac",
    "read_header",
]

INTRO = b"age-encryption.org/v1\n"
_VERSION_PREFIX = b"age-encryption.org/"
STANZA_PREFIX = b"-> "
MAC_PREFIX = b"---"
_COLUMNS = 64
_BYTES_PER_LINE = _COLUMNS // 4 * 3

# Bounds for hostile input. A post-quantum stanza argument is ~1,500 characters;
# plugins may use more, so lines are allowed up to 16 KiB and a header up to 1 MiB.
MAX_LINE = 16 * 1024
MAX_HEADER = 1024 * 1024
MAX_STANZAS = 256

_ARG = re.compile(rb"[\x21-\x7e]+")
_B64 = re.compile(rb"[A-Za-z0-9+/]*")


def b64encode_raw(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def b64decode_strict(text: bytes | str) -> bytes:
    """Unpadded standard base64, rejecting padding, bad characters and non-canonical bits."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not _B64.fullmatch(raw) or len(raw) % 4 == 1:
        raise ValueError("invalid base64")
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise ValueError("invalid base64") from None
    if b64encode_raw(data) != raw:
        raise ValueError("non-canonical base64")
    return data


@dataclass(frozen=True, slots=True)
class Stanza:
    """One recipient stanza: a type, its arguments, and a body."""

    type: str
    args: tuple[str, ...]
    body: bytes

    def encode(self) -> bytes:
        line = b" ".join(
            [STANZA_PREFIX.rstrip(b" "), *(a.encode() for a in (self.type, *self.args))]
        )
        out = [line, b"\n"]
        encoded = b64encode_raw(self.body)
        # The body always ends with a short line, which is empty when the body is
        # a multiple of 48 bytes: that is how a reader knows the stanza is over.
        for i in range(0, len(encoded) + 1, _COLUMNS):
            out += [encoded[i : i + _COLUMNS], b"\n"]
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class Header:
    stanzas: tuple[Stanza, ...]
    # The exact bytes the MAC covers: from the version line through "---".
    mac_input: bytes
    mac: bytes


def encode_header_without_mac(stanzas: list[Stanza]) -> bytes:
    return b"".join([INTRO, *(s.encode() for s in stanzas), MAC_PREFIX])


def _read_line(src: LineSource, consumed: int) -> bytes:
    line = src.readline(MAX_LINE + 1)
    if consumed + len(line) > MAX_HEADER:
        raise HeaderError("header is larger than 1 MiB")
    if not line.endswith(b"\n"):
        if len(line) > MAX_LINE:
            raise HeaderError("header line is longer than 16 KiB")
        raise HeaderError("file ends inside the header" if line or consumed else "file is empty")
    return line


def _parse_args(line: bytes) -> tuple[str, tuple[str, ...]]:
    parts = line[len(STANZA_PREFIX) : -1].split(b" ")
    for part in parts:
        if not _ARG.fullmatch(part):
            raise HeaderError("stanza has an empty argument or an invalid character")
    if not parts or not parts[0]:
        raise HeaderError("stanza has no type")
    decoded = [p.decode("ascii") for p in parts]
    return decoded[0], tuple(decoded[1:])


def read_header(src: LineSource) -> Header:
    """Reads and parses a header from a binary stream, leaving it at the payload nonce."""
    consumed = 0
    line = _read_line(src, consumed)
    consumed += len(line)
    if line != INTRO:
        if line.startswith(_VERSION_PREFIX):
            raise HeaderError("unsupported age format version")
        raise HeaderError("not an age file (no age-encryption.org/v1 line)")
    parts = [line]
    stanzas: list[Stanza] = []
    line = _read_line(src, consumed)
    while line.startswith(STANZA_PREFIX):
        if len(stanzas) == MAX_STANZAS:
            raise HeaderError(f"more than {MAX_STANZAS} recipient stanzas")
        consumed += len(line)
        parts.append(line)
        stype, args = _parse_args(line)
        body = bytearray()
        while True:
            line = _read_line(src, consumed)
            consumed += len(line)
            parts.append(line)
            text = line[:-1]
            if len(text) > _COLUMNS:
                raise HeaderError("stanza body line is longer than 64 columns")
            try:
                chunk = b64decode_strict(text)
            except ValueError as exc:
                raise HeaderError(f"stanza body line is not canonical base64: {exc}") from None
            body += chunk
            if len(chunk) < _BYTES_PER_LINE:
                break
        stanzas.append(Stanza(stype, args, bytes(body)))
        line = _read_line(src, consumed)
    if not line.startswith(MAC_PREFIX + b" "):
        raise HeaderError("expected a stanza or the '--- ' MAC line")
    consumed += len(line)
    encoded_mac = line[len(MAC_PREFIX) + 1 : -1]
    try:
        mac = b64decode_strict(encoded_mac)
    except ValueError:
        raise HeaderError("header MAC is not canonical base64") from None
    if len(mac) != 32:
        raise HeaderError("header MAC has the wrong length")
    parts.append(MAC_PREFIX)
    return Header(tuple(stanzas), b"".join(parts), mac)
