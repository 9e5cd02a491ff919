"""The age recipe: header + MAC + STREAM, for whole byte strings and for streams."""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from ._errors import HeaderError, HMACError, NoMatchError
from ._format import Header, b64encode_raw, encode_header_without_mac, read_header
from ._hybrid import HybridIdentity, HybridRecipient
from ._io import Reader, Writer
from ._primitives import hkdf_sha256, hmac_sha256, hmac_verify
from ._recipient import FILE_KEY_SIZE, Identity, Recipient
from ._stream import NONCE_SIZE, StreamReader, StreamWriter, payload_key
from ._x25519 import X25519Identity, X25519Recipient
from .armor import ArmorReader, ArmorWriter, looks_armored

T = TypeVar("T")

__all__ = [
    "Decryptor",
    "Encryptor",
    "decrypt",
    "decrypt_stream",
    "encrypt",
    "parse_identity",
    "parse_identity_file",
    "parse_recipient",
    "parse_recipients_file",
]


def _header_key(file_key: bytes) -> bytes:
    return hkdf_sha256(file_key, b"", b"header")


def _check_recipients(recipients: Sequence[Recipient]) -> None:
    if not recipients:
        raise ValueError("no recipients")
    labels = {r.label for r in recipients}
    if "scrypt" in labels and len(recipients) > 1:
        raise ValueError("a passphrase must be the only recipient of a file")
    if "postquantum" in labels and labels != {"postquantum"}:
        # A file is only as strong as its weakest stanza: one classic recipient would
        # undo the post-quantum protection of every other.
        raise ValueError("cannot mix post-quantum and classic recipients in one file")


class Encryptor:
    """Push encryptor: write() plaintext as it arrives, close() to finish the file.

    ``out`` is any :class:`Writer` (age's io.Writer): a file, a socket, a wrapper.
    Memory stays bounded by one 64 KiB chunk whatever the file size. close() does
    not close `out`; an Encryptor that is never closed leaves a truncated file that
    every age implementation rejects, never a shorter valid one. An Encryptor is
    itself a Writer, so encryptions compose.
    """

    def __init__(
        self, out: Writer, recipients: Sequence[Recipient], *, armor: bool = False
    ) -> None:
        _check_recipients(recipients)
        file_key = secrets.token_bytes(FILE_KEY_SIZE)
        stanzas = [stanza for r in recipients for stanza in r.wrap(file_key)]
        header = encode_header_without_mac(stanzas)
        mac = hmac_sha256(_header_key(file_key), header)
        self._armor = ArmorWriter(out) if armor else None
        sink: Writer = self._armor if self._armor is not None else out
        nonce = secrets.token_bytes(NONCE_SIZE)
        sink.write(header + b" " + b64encode_raw(mac) + b"\n" + nonce)
        self._stream = StreamWriter(sink, payload_key(file_key, nonce))

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._stream.write(data)

    def close(self) -> None:
        self._stream.close()
        if self._armor is not None:
            self._armor.close()

    def __enter__(self) -> Encryptor:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        # On an exception the file is left unfinished on purpose: a truncated age file
        # fails to decrypt, whereas finishing it would seal a partial plaintext.
        if exc_type is None:
            self.close()


class _Prefixed(io.RawIOBase):
    """A raw stream over any :class:`Reader`: first the bytes already read from it, then
    the rest. io.BufferedReader over this gives the layers below lines, peek and readinto.
    """

    def __init__(self, prefix: bytes, src: Reader) -> None:
        self._prefix = prefix
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        readinto = getattr(self._src, "readinto", None)
        if readinto is not None:
            return int(readinto(buffer) or 0)
        data = self._src.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


_BUFFER = 256 * 1024


def _open_source(src: Reader, armored: bool | None) -> io.BufferedReader:
    stream: io.BufferedReader
    if armored is None:
        prefix = src.read(64)
        while prefix and not prefix.strip(b" \t\r\n") and len(prefix) < 4096:
            more = src.read(64)
            if not more:
                break
            prefix += more
        armored = looks_armored(prefix)
        stream = io.BufferedReader(_Prefixed(prefix, src), _BUFFER)
    elif isinstance(src, io.BufferedReader):
        stream = src  # a file opened "rb" already has what the layers below need
    else:
        stream = io.BufferedReader(_Prefixed(b"", src), _BUFFER)
    if armored:
        return io.BufferedReader(ArmorReader(stream), _BUFFER)
    return stream


def _unwrap(header: Header, identities: Sequence[Identity]) -> bytes:
    if any(s.type == "scrypt" for s in header.stanzas) and len(header.stanzas) != 1:
        raise HeaderError("a passphrase (scrypt) stanza must be the only one in the header")
    for identity in identities:
        file_key = identity.unwrap(header.stanzas)
        if file_key is not None:
            return file_key
    raise NoMatchError("none of the given identities can open this file")


class Decryptor:
    """Pull decryptor. The constructor reads and authenticates the header (raising
    HeaderError, NoMatchError or HMACError); iterating yields plaintext chunks, each
    only once it has authenticated, and raises PayloadError at the first bad one.
    ``src`` is any :class:`Reader` (age's io.Reader).
    """

    def __init__(
        self, src: Reader, identities: Sequence[Identity], *, armored: bool | None = None
    ) -> None:
        stream = _open_source(src, armored)
        header = read_header(stream)
        file_key = _unwrap(header, identities)
        if not hmac_verify(_header_key(file_key), header.mac_input, header.mac):
            raise HMACError("header MAC does not match: the header was altered")
        nonce = stream.read(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise HeaderError("payload nonce is missing or short")
        self._reader = StreamReader(stream, payload_key(file_key, nonce))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._reader)


def decrypt_stream(
    src: Reader, identities: Sequence[Identity], *, armored: bool | None = None
) -> Decryptor:
    """Decrypts a binary stream chunk by chunk; armor is detected unless `armored` says."""
    return Decryptor(src, identities, armored=armored)


def encrypt(plaintext: bytes, recipients: Sequence[Recipient], *, armor: bool = False) -> bytes:
    out = io.BytesIO()
    with Encryptor(out, recipients, armor=armor) as enc:
        enc.write(plaintext)
    return out.getvalue()


def decrypt(
    ciphertext: bytes, identities: Sequence[Identity], *, armored: bool | None = None
) -> bytes:
    return b"".join(decrypt_stream(io.BytesIO(ciphertext), identities, armored=armored))


def parse_recipient(text: str) -> Recipient:
    """A recipient from its text form: age1… (X25519) or age1pq1… (post-quantum hybrid)."""
    text = text.strip()
    if text.startswith("age1pq1"):
        return HybridRecipient.parse(text)
    if text.startswith("age1"):
        return X25519Recipient.parse(text)
    raise ValueError("unknown recipient type (expected age1… or age1pq1…)")


def parse_identity(text: str) -> Identity:
    """An identity from its text form: AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…."""
    text = text.strip()
    if text.startswith("AGE-SECRET-KEY-PQ-1"):
        return HybridIdentity.parse(text)
    if text.startswith("AGE-SECRET-KEY-1"):
        return X25519Identity.parse(text)
    raise ValueError("unknown identity type (expected AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…)")


def _parse_lines(text: str, parse: Callable[[str], T], what: str) -> list[T]:
    """One key per line; '#' comments and blank lines skipped. Errors name the line,
    never quote it: an identity line is secret material."""
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(parse(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    if not keys:
        raise ValueError(f"no {what} found")
    return keys


def parse_identity_file(text: str) -> list[Identity]:
    """Identities from an identity file: one per line, '#' comments and blank lines skipped."""
    return _parse_lines(text, parse_identity, "identities")


def parse_recipients_file(text: str) -> list[Recipient]:
    """Recipients from a recipients file (age -R): one per line, comments skipped."""
    return _parse_lines(text, parse_recipient, "recipients")
