"""ASCII armor: age files as PEM-style text, streamed both ways.

Strict as the spec asks: standard padded base64 in lines of exactly 64
columns (the last one shorter, never empty), LF or CRLF line ends, no headers,
no whitespace inside; only whitespace may surround the armored block.
"""

from __future__ import annotations

import base64
import binascii
import io

from ._errors import ArmorError
from ._io import ArmorSource, Writer

__all__ = ["ArmorReader", "ArmorWriter", "BEGIN", "END", "looks_armored"]

BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
END = b"-----END AGE ENCRYPTED FILE-----"
_COLUMNS = 64
_BYTES_PER_LINE = _COLUMNS // 4 * 3
_WHITESPACE = b" \t\r\n"
# How much whitespace we read before or after the block before calling it garbage.
_MAX_SURROUNDING = 4096


def looks_armored(prefix: bytes) -> bool:
    return prefix.lstrip(_WHITESPACE).startswith(BEGIN[:10])


class ArmorWriter:
    """Wraps a binary sink; write() binary data, close() to write the END line."""

    def __init__(self, out: Writer) -> None:
        self._out = out
        self._pending = bytearray()
        self._closed = False
        out.write(BEGIN + b"\n")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed armor writer")
        self._pending += data
        whole = len(self._pending) - len(self._pending) % _BYTES_PER_LINE
        if whole:
            encoded = base64.b64encode(self._pending[:whole])
            lines = [encoded[i : i + _COLUMNS] for i in range(0, len(encoded), _COLUMNS)]
            self._out.write(b"\n".join(lines) + b"\n")
            del self._pending[:whole]
        return len(data)

    def close(self) -> None:
        if self._closed:
            return
        if self._pending:
            self._out.write(base64.b64encode(self._pending) + b"\n")
        self._out.write(END + b"\n")
        self._closed = True


class ArmorReader(io.RawIOBase):
    """A raw binary stream of the bytes inside an armored block."""

    def __init__(self, src: ArmorSource) -> None:
        self._src = src
        self._decoded = b""
        self._started = False
        self._finished = False

    def readable(self) -> bool:
        return True

    def _line(self) -> bytes:
        line = self._src.readline(_COLUMNS + 3)
        if line.endswith(b"\r\n"):
            return line[:-2]
        if line.endswith(b"\n"):
            return line[:-1]
        if len(line) > _COLUMNS + 1:
            raise ArmorError("armor line is longer than 64 columns")
        return line  # the last line of the file may lack an end of line

    def _start(self) -> None:
        skipped = 0
        while True:
            byte = self._src.read(1)
            if not byte:
                raise ArmorError("no armor BEGIN line")
            if byte not in _WHITESPACE:
                break
            skipped += 1
            if skipped > _MAX_SURROUNDING:
                raise ArmorError("too much whitespace before the BEGIN line")
        line = byte + self._line()
        if line != BEGIN:
            raise ArmorError("the first line is not the armor BEGIN line")
        self._started = True

    def _next_block(self) -> bytes:
        line = self._line()
        if line == END:
            # Only reachable straight after BEGIN (a full line peeks for END below):
            # an empty armored block, valid armor around an empty (invalid) age file.
            self._check_trailer()
            return b""
        if not line:
            raise ArmorError("empty line inside the armor")
        if len(line) > _COLUMNS:
            raise ArmorError("armor line is longer than 64 columns")
        try:
            data = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ArmorError("armor line is not valid padded base64") from None
        if base64.b64encode(data) != line:
            raise ArmorError("armor line is not canonical base64")
        if len(data) < _BYTES_PER_LINE or self._peek_end():
            self._finish()
        return data

    def _peek_end(self) -> bool:
        # A full line may be the last one: look ahead for the END line without consuming
        # anything else.
        return self._src.peek(len(END))[: len(END)] == END

    def _finish(self) -> None:
        if self._line() != END:
            raise ArmorError("armor END line missing, or a short line before the end")
        self._check_trailer()

    def _check_trailer(self) -> None:
        rest = self._src.read(_MAX_SURROUNDING + 1)
        if rest.strip(_WHITESPACE) or len(rest) > _MAX_SURROUNDING:
            raise ArmorError("unexpected data after the armor END line")
        self._finished = True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._started:
            self._start()
        while not self._decoded and not self._finished:
            self._decoded = self._next_block()
        n = min(len(buffer), len(self._decoded))
        buffer[:n] = self._decoded[:n]
        self._decoded = self._decoded[n:]
        return n
