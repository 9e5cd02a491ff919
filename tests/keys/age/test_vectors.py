"""Every C2SP CCTV age vector in tests/vectors/age: outcome class and released plaintext."""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from keys.age import AgeError, Identity, ScryptIdentity, decrypt_stream, parse_identity

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "age"
_KNOWN_KEYS = {
    "expect",
    "payload",
    "file key",
    "identity",
    "passphrase",
    "armored",
    "compressed",
    "comment",
}


@dataclass
class Vector:
    name: str
    expect: str
    body: bytes
    payload: str | None = None
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False


def _load(path: Path) -> Vector | None:
    raw = path.read_bytes()
    preamble, _, body = raw.partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in preamble.decode().split("\n"):
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    if set(fields) - _KNOWN_KEYS:
        return None  # the format says: skip vectors with keys we do not know
    if fields.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return Vector(
        name=path.name,
        expect=fields["expect"][0],
        body=body,
        payload=fields.get("payload", [None])[0],
        identities=fields.get("identity", []),
        passphrases=fields.get("passphrase", []),
        armored=fields.get("armored") == ["yes"],
    )


def _vectors() -> list[Vector]:
    loaded = [_load(p) for p in sorted(VECTORS.iterdir()) if p.suffix != ".md"]
    return [v for v in loaded if v is not None]


ALL = _vectors()


def test_every_vector_file_is_runnable() -> None:
    files = [p for p in VECTORS.iterdir() if p.suffix != ".md"]
    assert len(files) == 114
    assert len(ALL) == len(files), "a vector has a preamble key this suite does not know"


@pytest.mark.parametrize("vector", ALL, ids=[v.name for v in ALL])
def test_vector(vector: Vector) -> None:
    identities: list[Identity] = [parse_identity(s) for s in vector.identities]
    identities += [ScryptIdentity(p) for p in vector.passphrases]
    released = hashlib.sha256()
    outcome = "success"
    try:
        for chunk in decrypt_stream(io.BytesIO(vector.body), identities, armored=vector.armored):
            released.update(chunk)
    except AgeError as exc:
        outcome = exc.kind
    assert outcome == vector.expect
    if vector.expect in ("success", "payload failure"):
        assert released.hexdigest() == vector.payload


@pytest.mark.parametrize(
    "vector",
    [v for v in ALL if v.expect == "success"],
    ids=[v.name for v in ALL if v.expect == "success"],
)
def test_armor_is_detected_without_a_hint(vector: Vector) -> None:
    identities: list[Identity] = [parse_identity(s) for s in vector.identities]
    identities += [ScryptIdentity(p) for p in vector.passphrases]
    data = b"".join(decrypt_stream(io.BytesIO(vector.body), identities))
    assert hashlib.sha256(data).hexdigest() == vector.payload
