"""Fingerprints (fixed encoding, display form, separation) and QR renderings."""

from __future__ import annotations

import hashlib
import re
import struct
import xml.etree.ElementTree as ET
import zlib

import pytest
import qrcode

from keys.age import HybridIdentity, X25519Identity
from keys.fingerprint import (
    FINGERPRINT_RE,
    desk_fingerprint,
    fingerprint_qr_payload,
    recipient_fingerprint,
)
from keys.qr import qr_matrix, qr_png, qr_svg, qr_terminal
from keys.signing import SigningKey

RECIPIENT = str(X25519Identity.from_bytes(bytes(range(32))).recipient())
VERIFY_KEY = SigningKey.from_seed(b"\x02" * 32).verify_key


def test_desk_fingerprint_matches_the_documented_encoding() -> None:
    r = RECIPIENT.encode()
    expected = (
        hashlib.sha256(
            b"amana-fingerprint-v1\x00desk\x00"
            + struct.pack(">I", len(r))
            + r
            + struct.pack(">I", 32)
            + VERIFY_KEY.raw
        )
        .hexdigest()[:32]
        .upper()
    )
    fp = desk_fingerprint(RECIPIENT, str(VERIFY_KEY))
    assert fp.replace(" ", "") == expected
    assert FINGERPRINT_RE.fullmatch(fp)
    assert len(fp.split(" ")) == 8
    assert desk_fingerprint(RECIPIENT, VERIFY_KEY) == fp


def test_fingerprints_change_with_every_input_and_are_domain_separated() -> None:
    base = desk_fingerprint(RECIPIENT, VERIFY_KEY)
    other_recipient = str(X25519Identity.generate().recipient())
    assert desk_fingerprint(other_recipient, VERIFY_KEY) != base
    assert desk_fingerprint(RECIPIENT, SigningKey.generate().verify_key) != base
    assert recipient_fingerprint(RECIPIENT) != base
    assert recipient_fingerprint(RECIPIENT) != recipient_fingerprint(other_recipient)
    assert FINGERPRINT_RE.fullmatch(recipient_fingerprint(RECIPIENT))


def test_fingerprint_rejects_bad_keys() -> None:
    with pytest.raises(ValueError, match="recipient"):
        desk_fingerprint("age1notarecipient", VERIFY_KEY)
    with pytest.raises(ValueError, match="verify key"):
        desk_fingerprint(RECIPIENT, "ed25519:short")


def test_pq_recipient_fingerprint() -> None:
    pq = str(HybridIdentity.generate().recipient())
    assert FINGERPRINT_RE.fullmatch(recipient_fingerprint(pq))


def test_qr_payload() -> None:
    fp = desk_fingerprint(RECIPIENT, VERIFY_KEY)
    payload = fingerprint_qr_payload(fp, "smex")
    assert re.fullmatch(r"amana-fp:v1:smex:[0-9A-F]{32}", payload)
    assert fingerprint_qr_payload(fp).startswith("amana-fp:v1:-:")
    with pytest.raises(ValueError, match="not a fingerprint"):
        fingerprint_qr_payload("not a fingerprint")


def _reference_matrix(text: str) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(text.encode())
    code.make(fit=True)
    return [[bool(m) for m in row] for row in code.get_matrix()]


def test_svg_is_inline_safe_and_draws_the_matrix() -> None:
    hostile = '"><script>alert(1)</script>&'
    svg = qr_svg(hostile)
    assert svg.startswith("<svg ")
    assert svg.endswith("</svg>")
    for forbidden in ("<?xml", "<!DOCTYPE", "<script", "href", "http://www.w3.org/1999/xlink", "&"):
        assert forbidden not in svg
    root = ET.fromstring(svg)  # noqa: S314 - our own output, parsed to check its shape
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    # Every dark module is covered by exactly the path's runs.
    matrix = _reference_matrix(hostile)
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    drawn = set()
    for x, y, w in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", path.get("d", "")):
        for dx in range(int(w)):
            drawn.add((int(x) + dx, int(y)))
    dark = {(x, y) for y, row in enumerate(matrix) for x, m in enumerate(row) if m}
    assert drawn == dark


def test_terminal_rendering_encodes_the_matrix() -> None:
    text = qr_terminal(RECIPIENT)
    matrix = qr_matrix(RECIPIENT)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == (len(matrix) + 1) // 2
    assert all(len(line) == len(matrix) for line in lines)
    # Default: light modules are ink. Decode the top half of each glyph and compare.
    top_light = {"█": True, "▀": True, "▄": False, " ": False}
    for i, line in enumerate(lines):
        assert [top_light[c] for c in line] == [not m for m in matrix[2 * i]]
    inverted = qr_terminal(RECIPIENT, invert=True)
    assert inverted != text
    assert set(inverted) <= set("█▀▄ \n")


def _decode_png(data: bytes) -> tuple[int, int, list[list[int]]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (1, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + (width + 7) // 8
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0
        bits = "".join(f"{b:08b}" for b in line[1:])[:width]
        rows.append([int(b) for b in bits])
    return width, height, rows


def test_png_is_valid_and_draws_the_matrix() -> None:
    png = qr_png(RECIPIENT, module_px=3)
    width, height, rows = _decode_png(png)
    matrix = qr_matrix(RECIPIENT)
    assert width == height == 3 * len(matrix)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            assert rows[3 * y + 1][3 * x + 1] == (0 if dark else 1)


def test_pq_recipient_fits_and_oversize_is_refused() -> None:
    pq = str(HybridIdentity.generate().recipient())
    assert len(qr_matrix(pq)) > 100
    with pytest.raises(ValueError, match="too long"):
        qr_svg("x" * 3000)
