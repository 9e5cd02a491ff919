"""QR codes for out-of-band key checks: inline SVG, terminal text and PNG.

The ``qrcode`` package computes the module matrix; the three renderings are written here
so that each is exactly what its consumer needs and nothing more:

* SVG: one ``<svg>`` element with a background ``<rect>`` and one ``<path>``; no XML
  declaration, no DOCTYPE, no external reference, no script, and none of the encoded
  text in the markup, so it is safe to inline in an HTML page served with a strict CSP.
* terminal: Unicode half blocks, two module rows per text line.
* PNG: 1-bit greyscale written with :mod:`zlib`, so no Pillow or pypng is needed.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

import qrcode
import qrcode.constants

__all__ = ["MAX_QR_BYTES", "qr_matrix", "qr_png", "qr_svg", "qr_terminal"]

#: Byte-mode capacity of a version 40 code at error-correction level M; an
#: ``age1pq1…`` recipient (about 1,960 characters) fits.
MAX_QR_BYTES: Final = 2331
_BORDER: Final = 4  # the quiet zone the QR specification requires


def qr_matrix(text: str) -> list[list[bool]]:
    """The modules (True = dark), quiet zone included, at error-correction level M."""
    data = text.encode("utf-8")
    if len(data) > MAX_QR_BYTES:
        raise ValueError(f"too long for one QR code ({len(data)} > {MAX_QR_BYTES} bytes)")
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=_BORDER)
    code.add_data(data)
    code.make(fit=True)
    matrix: list[list[bool]] = [[bool(m) for m in row] for row in code.get_matrix()]
    return matrix


def qr_svg(text: str, *, module_px: int = 4) -> str:
    """An inline ``<svg>`` element, dark modules on white, sized ``module_px`` per module."""
    matrix = qr_matrix(text)
    n = len(matrix)
    # One path of unit squares; horizontal runs are merged to keep the markup small.
    parts: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    size = n * module_px
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" '
        f'width="{size}" height="{size}" shape-rendering="crispEdges" role="img">'
        f'<rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/>'
        "</svg>"
    )


def qr_terminal(text: str, *, invert: bool = False) -> str:
    """Text for a terminal, two module rows per line with ``▀ ▄ █``.

    By default dark modules are drawn as spaces and light ones as blocks, which reads
    correctly on the usual light-on-dark terminal; ``invert=True`` is for dark-on-light.
    """
    matrix = qr_matrix(text)
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))  # a light row, part of the quiet zone
    glyphs = {
        # (top is light, bottom is light) -> glyph, drawing light modules as ink
        (True, True): "█",
        (True, False): "▀",
        (False, True): "▄",
        (False, False): " ",
    }
    lines = []
    for top, bottom in zip(matrix[0::2], matrix[1::2], strict=True):
        if invert:
            line = "".join(glyphs[(t, b)] for t, b in zip(top, bottom, strict=True))
        else:
            line = "".join(glyphs[(not t, not b)] for t, b in zip(top, bottom, strict=True))
        lines.append(line)
    return "\n".join(lines) + "\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def qr_png(text: str, *, module_px: int = 8) -> bytes:
    """A PNG image (1-bit greyscale), ``module_px`` pixels per module."""
    if not 1 <= module_px <= 64:
        raise ValueError("module_px must be between 1 and 64")
    matrix = qr_matrix(text)
    width = len(matrix) * module_px
    rows = bytearray()
    for row in matrix:
        bits = "".join(("0" if dark else "1") * module_px for dark in row)  # 1 = white
        bits += "0" * (-len(bits) % 8)
        line = b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")  # filter type 0
        rows += line * module_px
    header = struct.pack(">IIBBBBB", width, width, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )
