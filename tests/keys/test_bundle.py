"""Signed bundles: round trip, and every hostile variation is refused with a clear error."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keys.bundle import (
    END_MAGIC,
    MAGIC,
    MAX_MANIFEST_BYTES,
    BundleError,
    open_bundle,
    write_bundle,
    write_bundle_file,
)
from keys.signing import CONTEXT_BUNDLE, CONTEXT_STAFF_REQUEST, SigningKey, VerifyKey

DESK = SigningKey.from_seed(b"\x11" * 32)
SERVER = SigningKey.from_seed(b"\x22" * 32)
TRUSTED: dict[str, VerifyKey] = {"smex": DESK.verify_key, "server": SERVER.verify_key}
FILES = {"a.age": b"A" * 70_000, "empty.age": b"", "b.age": os.urandom(1000)}


def _bundle(tmp_path: Path, files: dict[str, bytes] | None = None, **kw: Any) -> Path:
    path = tmp_path / "x.bundle"
    items = [(n, io.BytesIO(d)) for n, d in (files if files is not None else FILES).items()]
    write_bundle_file(path, kw.pop("kind", "ack"), kw.pop("creator", "smex"), items, DESK, **kw)
    return path


def _split(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(file region, manifest, signature, signer) of a bundle."""
    (m_len,) = struct.unpack(">Q", data[-24:-16])
    tail = data[-(120 + m_len) :]
    return (
        data[16 : len(data) - 120 - m_len],
        tail[:m_len],
        tail[m_len : m_len + 64],
        tail[m_len + 64 : m_len + 96],
    )


def _assemble(
    region: bytes, manifest: bytes, key: SigningKey, signature: bytes | None = None
) -> bytes:
    sig = signature if signature is not None else key.sign(manifest, context=CONTEXT_BUNDLE)
    return (
        MAGIC
        + region
        + manifest
        + sig
        + key.verify_key.raw
        + struct.pack(">Q", len(manifest))
        + END_MAGIC
    )


def _resign(path: Path, edit: Callable[[dict[str, Any]], None], key: SigningKey = DESK) -> None:
    """Re-sign an edited manifest with a trusted key: only the content checks can catch it."""
    region, manifest, _, _ = _split(path.read_bytes())
    doc = json.loads(manifest)
    edit(doc)
    path.write_bytes(_assemble(region, json.dumps(doc).encode(), key))


def _rejects(path: Path, match: str, **kw: Any) -> None:
    with pytest.raises(BundleError, match=match):
        open_bundle(path, TRUSTED, **kw)


def test_round_trip(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    with open_bundle(path, TRUSTED, kind="ack") as b:
        assert b.names == list(FILES)
        assert b.creator == b.signer_id == "smex"
        assert b.kind == "ack"
        assert len(b.id) == 32
        for entry in b.files:
            assert entry.size == len(FILES[entry.name])
            assert entry.sha256 == hashlib.sha256(FILES[entry.name]).hexdigest()
            assert b.read(entry.name) == FILES[entry.name]
        out = b.extract("a.age", tmp_path / "a.age")
        assert out.read_bytes() == FILES["a.age"]
        assert out.stat().st_mode & 0o777 == 0o600
        with pytest.raises(BundleError, match="no file"):
            b.read("missing.age")


def test_empty_bundle_and_path_sources(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"from a path")
    out = tmp_path / "p.bundle"
    write_bundle_file(out, "reply", "server", [("r.age", src)], SERVER)
    with open_bundle(out, TRUSTED) as b:
        assert b.read("r.age") == b"from a path"
    path = _bundle(tmp_path, {}, kind="deletion")
    with open_bundle(path, TRUSTED) as b:
        assert b.files == ()


def test_write_is_streaming_into_any_sink() -> None:
    sink = io.BytesIO()
    manifest = write_bundle(
        sink, "ack", "smex", [("x.age", io.BytesIO(b"x"))], DESK, created="2026-01-02"
    )
    assert manifest["created"] == "2026-01-02"
    assert sink.getvalue().startswith(MAGIC + b"x{")


def test_tampered_file_byte(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    data = bytearray(path.read_bytes())
    data[16 + 5] ^= 1
    path.write_bytes(bytes(data))
    _rejects(path, "'a.age' does not match its SHA-256")


def test_tampered_manifest(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    data = path.read_bytes()
    region, manifest, sig, _ = _split(data)
    edited = manifest.replace(b'"kind":"ack"', b'"kind":"del"')
    assert edited != manifest
    path.write_bytes(_assemble(region, edited, DESK, signature=sig))
    _rejects(path, "bad signature")


def test_swapped_signature_from_another_bundle(tmp_path: Path) -> None:
    first = _bundle(tmp_path)
    _, _, sig, _ = _split(first.read_bytes())
    second = tmp_path / "y.bundle"
    write_bundle_file(second, "ack", "smex", [("z.age", io.BytesIO(b"z"))], DESK)
    region, manifest, _, _ = _split(second.read_bytes())
    second.write_bytes(_assemble(region, manifest, DESK, signature=sig))
    _rejects(second, "bad signature")


def test_signature_from_another_context_is_refused(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    region, manifest, _, _ = _split(path.read_bytes())
    wrong = DESK.sign(manifest, context=CONTEXT_STAFF_REQUEST)
    path.write_bytes(_assemble(region, manifest, DESK, signature=wrong))
    _rejects(path, "bad signature")


def test_untrusted_key(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    with pytest.raises(BundleError, match="not trusted"):
        open_bundle(path, {"server": SERVER.verify_key})
    # A stranger's key, however valid its signature, is not trusted either.
    region, manifest, _, _ = _split(path.read_bytes())
    path.write_bytes(_assemble(region, manifest, SigningKey.generate()))
    _rejects(path, "not trusted")


def test_creator_must_be_the_signer(tmp_path: Path) -> None:
    path = _bundle(tmp_path, creator="server")  # claims to be the server, signed by the desk
    _rejects(path, "says creator 'server' but 'smex' signed it")


def test_wrong_kind(tmp_path: Path) -> None:
    _rejects(_bundle(tmp_path), "expected a 'reply' bundle", kind="reply")


@pytest.mark.parametrize("cut", [1, 16, 120, 200, 70_000])
def test_truncated(tmp_path: Path, cut: int) -> None:
    path = _bundle(tmp_path)
    path.write_bytes(path.read_bytes()[:-cut])
    _rejects(path, "truncated|end marker|larger than|signature|too short")


def test_cut_file_region_is_refused(tmp_path: Path) -> None:
    # Remove bytes from the middle: the trailer is intact, the signature verifies,
    # but the file region is shorter than the manifest says.
    path = _bundle(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:100] + data[110:])
    _rejects(path, "file data is .* bytes but the manifest lists")


@pytest.mark.parametrize("extra", [b"x", b"\n", END_MAGIC, b"\x00" * 4096])
def test_trailing_data(tmp_path: Path, extra: bytes) -> None:
    path = _bundle(tmp_path)
    path.write_bytes(path.read_bytes() + extra)
    _rejects(path, "end marker|bad signature|not trusted|larger|file data")


def test_extra_file_data_is_refused(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    region, manifest, _, _ = _split(path.read_bytes())
    path.write_bytes(_assemble(region + b"smuggled", manifest, DESK))
    _rejects(path, "file data is .* bytes but the manifest lists")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../etc/passwd", "path separator|'\\.\\.'"),
        ("/etc/passwd", "path separator"),
        ("a/b.age", "path separator"),
        ("a\\b.age", "path separator"),
        ("..", "'\\.\\.'"),
        ("x..age", "'\\.\\.'"),
        ("nul\x00.age", "NUL"),
        ("", "empty"),
        (".hidden", "must be ASCII"),
        ("-rf", "must be ASCII"),
        ("ré.age", "must be ASCII"),
        ("a" * 129, "longer than 128"),
        ("sp ace.age", "must be ASCII"),
    ],
)
def test_path_tricks_refused_at_write_and_read(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        write_bundle(io.BytesIO(), "ack", "smex", [(name, io.BytesIO(b"x"))], DESK)
    path = _bundle(tmp_path, {"ok.age": b"x"})

    def rename(doc: dict[str, Any]) -> None:
        doc["files"][0]["name"] = name

    _resign(path, rename)
    _rejects(path, message)


def test_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="twice"):
        write_bundle(
            io.BytesIO(), "ack", "smex",
            [("a.age", io.BytesIO(b"1")), ("A.AGE", io.BytesIO(b"2"))], DESK,
        )  # fmt: skip
    path = _bundle(tmp_path, {"a.age": b"1", "b.age": b"2"})

    def dup(doc: dict[str, Any]) -> None:
        doc["files"][1]["name"] = "a.age"

    _resign(path, dup)
    _rejects(path, "appears twice")


def test_missing_file_entry(tmp_path: Path) -> None:
    path = _bundle(tmp_path, {"a.age": b"1", "b.age": b"2"})
    _resign(path, lambda doc: doc["files"].pop())
    _rejects(path, "file data is 2 bytes but the manifest lists 1")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(extra=1), "unknown fields"),
        (lambda d: d.pop("id"), "missing fields"),
        (lambda d: d.update(version=2), "version 1"),
        (lambda d: d.update(version=True), "version 1"),
        (lambda d: d.update(format="zip"), "version 1"),
        (lambda d: d.update(id="XYZ"), "'id' must be"),
        (lambda d: d.update(kind="Ack!"), "invalid 'kind'"),
        (lambda d: d.update(created="2026-02-30"), "not a real date"),
        (lambda d: d.update(created="2026-02-03T10:00"), "YYYY-MM-DD"),
        (lambda d: d.update(files={}), "'files' must be a list"),
        (lambda d: d["files"][0].update(size=-1), "non-negative"),
        (lambda d: d["files"][0].update(size=1.0), "non-negative"),
        (lambda d: d["files"][0].update(size=True), "non-negative"),
        (lambda d: d["files"][0].update(sha256="AB" * 32), "lower-case hex"),
        (lambda d: d["files"][0].update(mode=0o777), "exactly name, size, sha256"),
    ],
)
def test_malformed_signed_manifests(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = _bundle(tmp_path, {"a.age": b"1"})
    _resign(path, edit)
    _rejects(path, message)


def test_manifest_json_tricks(tmp_path: Path) -> None:
    path = _bundle(tmp_path, {"a.age": b"1"})
    region, manifest, _, _ = _split(path.read_bytes())
    dup = manifest[:-1] + b',"kind":"reply"}'
    path.write_bytes(_assemble(region, dup, DESK))
    _rejects(path, "duplicate JSON key 'kind'")
    path.write_bytes(_assemble(region, b"[]", DESK))
    _rejects(path, "must be a JSON object")
    path.write_bytes(_assemble(region, b"\xff\xfe", DESK))
    _rejects(path, "not valid UTF-8")


def test_oversize_manifest_length_refused_before_reading(tmp_path: Path) -> None:
    path = _bundle(tmp_path, {"a.age": b"1"})
    data = bytearray(path.read_bytes())
    data[-24:-16] = struct.pack(">Q", MAX_MANIFEST_BYTES + 1)
    path.write_bytes(bytes(data))
    _rejects(path, "manifest larger than")
    data[-24:-16] = struct.pack(">Q", 2**63)
    path.write_bytes(bytes(data))
    _rejects(path, "manifest larger than")
    data[-24:-16] = struct.pack(">Q", len(data))
    path.write_bytes(bytes(data))
    _rejects(path, "larger than the bundle")


def test_not_a_bundle(tmp_path: Path) -> None:
    p = tmp_path / "n"
    p.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    _rejects(p, "bad magic")
    p.write_bytes(b"")
    _rejects(p, "too short")
    link = tmp_path / "link"
    link.symlink_to(_bundle(tmp_path))
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        open_bundle(link, TRUSTED)
    with pytest.raises(BundleError, match="regular file"):
        open_bundle(tmp_path, TRUSTED)


def test_file_changed_after_verification_is_not_released(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    with open_bundle(path, TRUSTED) as b:
        with open(path, "r+b") as f:
            f.seek(16)
            f.write(b"B")
        with pytest.raises(BundleError, match="changed after"):
            b.read("a.age")
        with pytest.raises(BundleError, match="changed after"):
            b.extract("a.age", tmp_path / "out.age")
        assert not (tmp_path / "out.age").exists()
        assert b.read("b.age") == FILES["b.age"]


def test_same_key_trusted_twice_is_a_caller_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same key"):
        open_bundle(_bundle(tmp_path), {"a": DESK.verify_key, "b": DESK.verify_key})


def test_interrupted_write_leaves_no_bundle(tmp_path: Path) -> None:
    def files():  # type: ignore[no-untyped-def]
        yield "a.age", io.BytesIO(b"1")
        raise RuntimeError("source vanished")

    with pytest.raises(RuntimeError):
        write_bundle_file(tmp_path / "x.bundle", "ack", "smex", files(), DESK)
    assert list(tmp_path.iterdir()) == []
