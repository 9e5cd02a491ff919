"""Signed bundles: several files moved as one, whose origin and integrity are checked.

Bundles carry ciphertext from the server to a desk (over the staff onion or a USB stick)
and acks, replies and deletions back. The byte format, fixed in docs/bundle-format.md::

    "AMANA-BUNDLE-V1\\n"                  16 bytes
    file 1 || file 2 || ... || file n     raw contents, in manifest order
    manifest                              M bytes of UTF-8 JSON
    signature                             64 bytes, Ed25519 (keys.signing, CONTEXT_BUNDLE)
    signer                                32 bytes, the signer's raw Ed25519 verify key
    u64be(M)                              8 bytes
    "AMANA-BUNDLE-END"                    16 bytes

The writer streams (each file is hashed as it is copied; the manifest comes last), so
memory is bounded by one buffer whatever the sizes. The reader, in this order: checks
both magics and bounds, finds the signer among the trusted keys, verifies the signature
over the raw manifest bytes, and only then parses the JSON; it then checks that the file
region is exactly as long as the manifest says and that every file's SHA-256 matches.
A file's bytes are released only after its hash has been checked again (so a file that
changes on disk after :func:`open_bundle` is still caught).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import stat
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final

from keys import ids, strict_json
from keys.fs import AtomicWriter, open_quietly
from keys.signing import CONTEXT_BUNDLE, BadSignature, SigningKey, VerifyKey

__all__ = [
    "MAX_FILES",
    "MAX_MANIFEST_BYTES",
    "BundleEntry",
    "BundleError",
    "VerifiedBundle",
    "check_name",
    "open_bundle",
    "write_bundle",
    "write_bundle_file",
]

MAGIC: Final = b"AMANA-BUNDLE-V1\n"
END_MAGIC: Final = b"AMANA-BUNDLE-END"
_SIG: Final = 64
_VK: Final = 32
_TRAILER: Final = _SIG + _VK + 8 + len(END_MAGIC)
FORMAT: Final = "amana-bundle"
VERSION: Final = 1
MAX_MANIFEST_BYTES: Final = 1024 * 1024
MAX_FILES: Final = 4096
MAX_NAME_BYTES: Final = 128
MAX_FILE_SIZE: Final = 2**53 - 1  # exactly representable in every JSON reader
_CHUNK: Final = 64 * 1024

_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_KIND_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,31}")
_SHA_RE: Final = re.compile(r"[0-9a-f]{64}")
_MANIFEST_FIELDS: Final = frozenset(
    {"format", "version", "id", "kind", "creator", "created", "files"}
)
_FILE_FIELDS: Final = frozenset({"name", "size", "sha256"})


class BundleError(ValueError):
    """The bundle is malformed, not signed by a trusted key, or altered."""


@dataclass(frozen=True)
class BundleEntry:
    name: str
    size: int
    sha256: str


def check_name(name: object) -> str:
    """Return ``name`` if it is a safe, portable file name; else raise :class:`BundleError`."""
    if not isinstance(name, str):
        raise BundleError("file name must be a string")
    shown = repr(name[:40])
    if not name:
        raise BundleError("empty file name")
    if "\x00" in name:
        raise BundleError(f"file name {shown} contains NUL")
    if "/" in name or "\\" in name:
        raise BundleError(f"file name {shown} contains a path separator")
    if ".." in name:
        raise BundleError(f"file name {shown} contains '..'")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BundleError(f"file name {shown} is longer than {MAX_NAME_BYTES} bytes")
    if not _NAME_RE.fullmatch(name):
        raise BundleError(
            f"file name {shown} must be ASCII letters, digits, '.', '_' or '-', "
            "not starting with '.', '_' or '-'"
        )
    return name


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _copy_hashing(src: BinaryIO, out: BinaryIO) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    while chunk := src.read(_CHUNK):
        h.update(chunk)
        out.write(chunk)
        size += len(chunk)
        if size > MAX_FILE_SIZE:
            raise BundleError("file too large for a bundle")
    return size, h.hexdigest()


def write_bundle(
    out: BinaryIO,
    kind: str,
    creator: str,
    files: Iterable[tuple[str, BinaryIO | str | os.PathLike[str]]],
    signing_key: SigningKey,
    *,
    created: str | None = None,
) -> dict[str, Any]:
    """Stream a signed bundle to ``out``; return the manifest written.

    On an exception ``out`` holds an unfinished bundle that :func:`open_bundle` refuses;
    use :func:`write_bundle_file` to get a file that appears only when complete.
    """
    if not _KIND_RE.fullmatch(kind):
        raise BundleError(f"kind {kind!r} must match {_KIND_RE.pattern}")
    if not ids.is_desk_id(creator):
        raise BundleError(f"creator {creator!r} must match {ids.DESK_ID_PATTERN}")
    created = created or _today()
    _check_day(created)
    out.write(MAGIC)
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, source in files:
        check_name(name)
        if name.lower() in seen:
            raise BundleError(f"file name {name!r} appears twice (names are case-insensitive)")
        seen.add(name.lower())
        if len(entries) >= MAX_FILES:
            raise BundleError(f"more than {MAX_FILES} files")
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as f:
                size, digest = _copy_hashing(f, out)
        else:
            size, digest = _copy_hashing(source, out)
        entries.append({"name": name, "size": size, "sha256": digest})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "id": ids.new_hex_id(),
        "kind": kind,
        "creator": creator,
        "created": created,
        "files": entries,
    }
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    raw = body.encode("ascii")
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError("manifest too large")
    out.write(raw)
    out.write(signing_key.sign(raw, context=CONTEXT_BUNDLE))
    out.write(signing_key.verify_key.raw)
    out.write(struct.pack(">Q", len(raw)))
    out.write(END_MAGIC)
    return manifest


def write_bundle_file(
    path: str | os.PathLike[str],
    kind: str,
    creator: str,
    files: Iterable[tuple[str, BinaryIO | str | os.PathLike[str]]],
    signing_key: SigningKey,
    *,
    created: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Like :func:`write_bundle`, to a file that appears (mode 0600) only when complete."""
    with AtomicWriter(path, overwrite=overwrite) as w:
        return write_bundle(w.file, kind, creator, files, signing_key, created=created)


def _check_day(day: object) -> str:
    if not isinstance(day, str) or not ids.DAY_RE.fullmatch(day):
        raise BundleError("manifest: 'created' must be a YYYY-MM-DD day")
    if not ids.is_day(day):
        raise BundleError("manifest: 'created' is not a real date")
    return day


def _is_int(value: object) -> bool:
    return type(value) is int  # bool is an int subclass; JSON true is not a size


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    try:
        obj = strict_json.loads(raw, max_bytes=MAX_MANIFEST_BYTES, max_depth=4)
    except strict_json.StrictJSONError as e:
        raise BundleError(f"manifest: {e}") from None
    if not isinstance(obj, dict):
        raise BundleError("manifest must be a JSON object")
    if set(obj) != _MANIFEST_FIELDS:
        extra, missing = set(obj) - _MANIFEST_FIELDS, _MANIFEST_FIELDS - set(obj)
        raise BundleError(
            f"manifest: unknown fields {sorted(extra)}, missing fields {sorted(missing)}"
        )
    if obj["format"] != FORMAT or not _is_int(obj["version"]) or obj["version"] != VERSION:
        raise BundleError(f"manifest: not an {FORMAT} version {VERSION}")
    if not ids.is_hex_id(obj["id"]):
        raise BundleError("manifest: 'id' must be 32 lower-case hex digits")
    if not isinstance(obj["kind"], str) or not _KIND_RE.fullmatch(obj["kind"]):
        raise BundleError("manifest: invalid 'kind'")
    if not ids.is_desk_id(obj["creator"]):
        raise BundleError("manifest: invalid 'creator'")
    _check_day(obj["created"])
    files = obj["files"]
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise BundleError(f"manifest: 'files' must be a list of at most {MAX_FILES}")
    seen: set[str] = set()
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or set(entry) != _FILE_FIELDS:
            raise BundleError(f"manifest: files[{i}] must have exactly name, size, sha256")
        name = check_name(entry["name"])
        if name.lower() in seen:
            raise BundleError(f"manifest: file name {name!r} appears twice")
        seen.add(name.lower())
        size = entry["size"]
        if not _is_int(size) or not 0 <= size <= MAX_FILE_SIZE:
            raise BundleError(f"manifest: files[{i}].size must be a non-negative integer")
        if not isinstance(entry["sha256"], str) or not _SHA_RE.fullmatch(entry["sha256"]):
            raise BundleError(f"manifest: files[{i}].sha256 must be 64 lower-case hex digits")
    return obj


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = os.pread(fd, size - len(data), offset + len(data))
        if not chunk:
            raise BundleError("bundle is truncated (it changed while being read)")
        data += chunk
    return bytes(data)


class VerifiedBundle:
    """A bundle whose signature and file hashes have been checked. Close it when done."""

    def __init__(
        self,
        fd: int,
        manifest: dict[str, Any],
        signer_id: str,
        signer: VerifyKey,
    ) -> None:
        self._fd = fd
        self.id: str = manifest["id"]
        self.kind: str = manifest["kind"]
        self.creator: str = manifest["creator"]
        self.created: str = manifest["created"]
        self.signer_id = signer_id
        self.signer = signer
        self.files: tuple[BundleEntry, ...] = tuple(
            BundleEntry(f["name"], f["size"], f["sha256"]) for f in manifest["files"]
        )
        self._offsets: dict[str, tuple[BundleEntry, int]] = {}
        offset = len(MAGIC)
        for entry in self.files:
            self._offsets[entry.name] = (entry, offset)
            offset += entry.size

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.files]

    def _stream(self, name: str, sink: BinaryIO) -> None:
        try:
            entry, offset = self._offsets[name]
        except KeyError:
            raise BundleError(f"no file {name!r} in this bundle") from None
        h = hashlib.sha256()
        done = 0
        while done < entry.size:
            chunk = _pread_exact(self._fd, min(_CHUNK, entry.size - done), offset + done)
            h.update(chunk)
            sink.write(chunk)
            done += len(chunk)
        if h.hexdigest() != entry.sha256:
            raise BundleError(f"file {name!r} changed after the bundle was verified")

    def read(self, name: str, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        """The verified bytes of one (small) file."""
        entry, _ = self._offsets.get(name, (None, 0))
        if entry is not None and entry.size > max_size:
            raise BundleError(f"file {name!r} is larger than {max_size} bytes; extract it")
        buf = io.BytesIO()
        self._stream(name, buf)
        return buf.getvalue()

    def extract(self, name: str, dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Copy one file to ``dest`` (0600); ``dest`` appears only if the hash matches."""
        with AtomicWriter(dest, overwrite=overwrite) as w:
            self._stream(name, w.file)
        return w.path

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> VerifiedBundle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_bundle(
    src: str | os.PathLike[str],
    trusted_keys: Mapping[str, VerifyKey],
    *,
    kind: str | None = None,
) -> VerifiedBundle:
    """Verify the bundle at ``src`` against ``trusted_keys`` (creator id → verify key).

    Raises :class:`BundleError` unless it is signed by one of the keys, its manifest
    names that key's id as creator (and ``kind`` if given), and every file matches.
    """
    by_key: dict[bytes, str] = {}
    for key_id, vk in trusted_keys.items():
        if vk.raw in by_key:
            raise ValueError(f"trusted keys {by_key[vk.raw]!r} and {key_id!r} are the same key")
        by_key[vk.raw] = key_id
    # Read-only, no link followed, and quietly: a bundle dated to the day (on a stick,
    # in a vault) keeps its day-only atime.
    fd = open_quietly(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        bundle = _verify(fd, by_key, kind)
    except BaseException:
        os.close(fd)
        raise
    return bundle


def _verify(fd: int, by_key: dict[bytes, str], kind: str | None) -> VerifiedBundle:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise BundleError("not a regular file")
    size = st.st_size
    if size < len(MAGIC) + _TRAILER:
        raise BundleError("too short to be a bundle (truncated?)")
    if _pread_exact(fd, len(MAGIC), 0) != MAGIC:
        raise BundleError("not an Amana bundle (bad magic)")
    trailer = _pread_exact(fd, _TRAILER, size - _TRAILER)
    if trailer[-len(END_MAGIC) :] != END_MAGIC:
        raise BundleError("bundle end marker missing: truncated, or data after the end")
    signature = trailer[:_SIG]
    signer_raw = trailer[_SIG : _SIG + _VK]
    (manifest_len,) = struct.unpack(">Q", trailer[_SIG + _VK : _SIG + _VK + 8])
    if manifest_len > MAX_MANIFEST_BYTES:
        raise BundleError(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
    data_len = size - len(MAGIC) - _TRAILER - manifest_len
    if data_len < 0:
        raise BundleError("manifest length is larger than the bundle")

    signer_id = by_key.get(signer_raw)
    if signer_id is None:
        raise BundleError("signed by a key that is not trusted here")
    signer = VerifyKey.from_bytes(signer_raw)
    raw = _pread_exact(fd, manifest_len, len(MAGIC) + data_len)
    try:
        signer.verify(raw, signature, context=CONTEXT_BUNDLE)
    except BadSignature:
        raise BundleError(f"bad signature (claimed signer {signer_id!r}): altered") from None

    # Only signed bytes are parsed from here on.
    manifest = _parse_manifest(raw)
    if manifest["creator"] != signer_id:
        raise BundleError(
            f"manifest says creator {manifest['creator']!r} but {signer_id!r} signed it"
        )
    if kind is not None and manifest["kind"] != kind:
        raise BundleError(f"expected a {kind!r} bundle, got {manifest['kind']!r}")
    declared = sum(f["size"] for f in manifest["files"])
    if declared != data_len:
        raise BundleError(
            f"file data is {data_len} bytes but the manifest lists {declared}: "
            "files were added, removed or truncated"
        )
    offset = len(MAGIC)
    for f in manifest["files"]:
        h = hashlib.sha256()
        done = 0
        while done < f["size"]:
            chunk = _pread_exact(fd, min(_CHUNK, f["size"] - done), offset + done)
            h.update(chunk)
            done += len(chunk)
        if h.hexdigest() != f["sha256"]:
            raise BundleError(f"file {f['name']!r} does not match its SHA-256: altered")
        offset += f["size"]
    return VerifiedBundle(fd, manifest, signer_id, signer)
