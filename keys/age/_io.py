"""What keys.age reads from and writes to: any object with the method it calls.

age's Go API takes an ``io.Writer`` and an ``io.Reader``; these Protocols are their
Python spelling, so that a file, ``sys.stdout.buffer``, a socket file, a hashing or
counting wrapper, or an adapter over an aiohttp body all fit without inheriting from
anything and without a ``type: ignore``. The public entry points take :class:`Writer`
and :class:`Reader`; the layers below ``_age`` read from the buffered stream ``_age``
builds and name only the methods they call.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ArmorSource", "ChunkSource", "LineSource", "Reader", "Writer"]


class Writer(Protocol):
    """Anything with ``write(data)``; the return value is ignored.

    ``data`` may be a memoryview: the STREAM layer hands over slices of its own
    buffer rather than copying each sealed chunk into a new bytes object.
    """

    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


class Reader(Protocol):
    """Anything with ``read(n)``, returning at most ``n`` bytes and ``b""`` at the end.

    A reader that also has ``readinto`` is read with it, which saves a copy.
    """

    def read(self, size: int, /) -> bytes: ...


class LineSource(Protocol):
    """The header parser's source: lines, bounded in length."""

    def readline(self, size: int, /) -> bytes: ...


class ChunkSource(Protocol):
    """The payload reader's source: chunks read into its own buffer."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class ArmorSource(Reader, LineSource, Protocol):
    """The armor reader's source: lines, bytes, and a look ahead that consumes nothing."""

    def peek(self, size: int, /) -> bytes: ...
