"""The STREAM payload: ChaCha20-Poly1305 over 64 KiB chunks.

Each chunk's nonce is an 11-byte big-endian counter and a last-chunk flag, so
chunks cannot be reordered, dropped or truncated without detection. Only the
last chunk may be shorter than 64 KiB, and it may be empty only when the whole
payload is empty.

Both directions hold at most one chunk (plus one byte of lookahead) in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._errors import PayloadError
from ._io import ChunkSource, Writer
from ._primitives import AEAD_TAG_SIZE, Aead, DecryptionFailed, hkdf_sha256

__all__ = ["CHUNK_SIZE", "NONCE_SIZE", "StreamReader", "StreamWriter", "payload_key"]

CHUNK_SIZE = 64 * 1024
NONCE_SIZE = 16
_ENCRYPTED_CHUNK = CHUNK_SIZE + AEAD_TAG_SIZE
_MAX_COUNTER = (1 << 88) - 1


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    return hkdf_sha256(file_key, nonce, b"payload")


def _nonce(counter: int, last: bool) -> bytes:
    if counter > _MAX_COUNTER:
        raise PayloadError("payload has more chunks than the format allows")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class StreamWriter:
    """Push encryptor: write() plaintext as it arrives, close() to seal the last chunk."""

    def __init__(self, out: Writer, key: bytes) -> None:
        self._out = out
        self._aead = Aead(key)
        self._counter = 0
        self._buffer = bytearray()
        self._sealed = memoryview(bytearray(_ENCRYPTED_CHUNK))
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a closed age encryptor")
        view = memoryview(data)
        # A full chunk can be sealed as non-final only once we know more data follows,
        # so a chunk is emitted when strictly more than CHUNK_SIZE bytes are pending.
        if self._buffer:
            need = CHUNK_SIZE - len(self._buffer)
            self._buffer += view[:need]
            view = view[need:]
            if len(self._buffer) < CHUNK_SIZE or not view:
                return
            self._emit(self._buffer, last=False)
            self._buffer = bytearray()
        while len(view) > CHUNK_SIZE:
            self._emit(view[:CHUNK_SIZE], last=False)
            view = view[CHUNK_SIZE:]
        self._buffer += view

    def close(self) -> None:
        if self._closed:
            return
        self._emit(self._buffer, last=True)
        self._buffer = bytearray()
        self._closed = True

    def _emit(self, chunk: bytes | bytearray | memoryview, *, last: bool) -> None:
        size = self._aead.seal_into(_nonce(self._counter, last), chunk, self._sealed)
        self._out.write(self._sealed[:size])
        self._counter += 1


class StreamReader:
    """Pull decryptor: iterating yields each chunk's plaintext once it authenticates."""

    def __init__(self, src: ChunkSource, key: bytes) -> None:
        self._src = src
        self._aead = Aead(key)

    def _fill(self, buf: bytearray, start: int) -> int:
        view = memoryview(buf)
        filled = start
        while filled < len(buf):
            n = self._src.readinto(view[filled:])
            if not n:
                break
            filled += n
        return filled

    def __iter__(self) -> Iterator[bytes]:
        # One byte of lookahead past a full chunk tells whether the file ends there.
        buf = bytearray(_ENCRYPTED_CHUNK + 1)
        view = memoryview(buf)
        counter = 0
        filled = self._fill(buf, 0)
        while True:
            at_eof = filled <= _ENCRYPTED_CHUNK
            size = filled if at_eof else _ENCRYPTED_CHUNK
            if size < AEAD_TAG_SIZE:
                if counter == 0 and size == 0:
                    raise PayloadError("the payload is missing")
                raise PayloadError("the payload is truncated")
            chunk = view[:size]
            if size == _ENCRYPTED_CHUNK:
                # A full chunk is normally not the last one; try that first, as the
                # reference does, so both agree on what was released before an error.
                try:
                    yield self._aead.open(_nonce(counter, False), chunk)
                except DecryptionFailed:
                    pass
                else:
                    if at_eof:
                        raise PayloadError("the file is truncated: its last chunk is missing")
                    counter += 1
                    buf[0] = buf[_ENCRYPTED_CHUNK]
                    filled = self._fill(buf, 1)
                    continue
            try:
                plaintext = self._aead.open(_nonce(counter, True), chunk)
            except DecryptionFailed:
                raise PayloadError(
                    f"chunk {counter} does not authenticate: the file is damaged or truncated"
                ) from None
            if not plaintext and counter > 0:
                raise PayloadError("the last chunk is empty, which only an empty file may have")
            yield plaintext
            if not at_eof:
                raise PayloadError("there is data after the end of the encrypted file")
            return
