"""The mlkem768x25519 recipient's failure classes, against our vectors in tests/vectors/age-hybrid.

Each vector holds one stanza shape and the CCTV class age v1.3 reports for it; the
generator beside them must still write them byte for byte, and README.md must list
each with its class.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from keys.age import (
    AgeError,
    HeaderError,
    HybridIdentity,
    HybridRecipient,
    X25519Identity,
    _bech32,
    decrypt_stream,
    parse_identity,
    parse_recipient,
)
from keys.age._format import Stanza, b64decode_strict, b64encode_raw

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "age-hybrid"
CLASSES = {
    "success",
    "no match",
    "HMAC failure",
    "header failure",
    "payload failure",
    "armor failure",
}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("age_hybrid_generate", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def _vector_files() -> list[Path]:
    return sorted(p for p in VECTORS.iterdir() if p.suffix not in (".md", ".py"))


def _parse(path: Path) -> tuple[dict[str, list[str]], bytes]:
    preamble, _, body = path.read_bytes().partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in preamble.decode().split("\n"):
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    return fields, body


FILES = _vector_files()


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_vector(path: Path) -> None:
    fields, body = _parse(path)
    identities = [parse_identity(s) for s in fields["identity"]]
    released = hashlib.sha256()
    outcome = "success"
    try:
        for chunk in decrypt_stream(
            io.BytesIO(body), identities, armored=fields.get("armored") == ["yes"]
        ):
            released.update(chunk)
    except AgeError as exc:
        outcome = exc.kind
    assert outcome == fields["expect"][0]
    if outcome in ("success", "payload failure"):
        assert released.hexdigest() == fields["payload"][0]


def test_every_class_has_a_vector() -> None:
    assert {_parse(p)[0]["expect"][0] for p in FILES} == CLASSES


def test_the_generator_writes_the_committed_files() -> None:
    written = {v.name: v.encode() for v in _generator().vectors()}
    assert written == {p.name: p.read_bytes() for p in FILES}


def test_readme_lists_every_vector_with_its_class() -> None:
    readme = (VECTORS / "README.md").read_text()
    rows = re.findall(r"^\| `(hybrid_\w+)` \| ([^|]+?) \|", readme, re.M)
    assert dict(rows) == {p.name: _parse(p)[0]["expect"][0] for p in FILES}
    assert len(rows) == len(FILES)


def _stanza_with_share(identity: HybridIdentity, share: bytes) -> Stanza:
    # A real encapsulation to this identity, with its X25519 share replaced.
    (stanza,) = identity.recipient().wrap(bytes(16))
    enc = b64decode_strict(stanza.args[0])
    return Stanza(stanza.type, (b64encode_raw(enc[:-32] + share).decode(),), stanza.body)


@pytest.mark.parametrize(
    "share",
    [
        bytes(32),
        (1).to_bytes(32, "little"),
        (1).to_bytes(32, "little")[:31] + b"\x80",  # u = 1 with the ignored top bit set
        (2**255 - 19).to_bytes(32, "little"),  # p, a non-canonical zero
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    ],
    ids=["zero", "one", "one-top-bit", "p", "order8", "order8-other"],
)
def test_a_low_order_share_is_a_header_failure_for_any_identity(share: bytes) -> None:
    identity = HybridIdentity.generate()
    with pytest.raises(HeaderError, match="low-order"):
        identity.unwrap([_stanza_with_share(identity, share)])


def test_a_malformed_hybrid_stanza_is_only_the_hybrid_identitys_business() -> None:
    hybrid = HybridIdentity.generate()
    (stanza,) = hybrid.recipient().wrap(bytes(16))
    malformed = Stanza(stanza.type, (*stanza.args, "AAAA"), stanza.body)
    assert X25519Identity.generate().unwrap([malformed]) is None
    with pytest.raises(HeaderError, match="exactly one argument"):
        hybrid.unwrap([malformed])


def test_a_stanza_for_another_hybrid_identity_is_skipped() -> None:
    ours, theirs = HybridIdentity.generate(), HybridIdentity.generate()
    file_key = bytes(range(16))
    stanzas = theirs.recipient().wrap(file_key) + ours.recipient().wrap(file_key)
    assert ours.unwrap(stanzas) == file_key
    assert ours.unwrap(stanzas[:1]) is None


def test_a_recipient_with_a_malformed_mlkem_key_is_refused_at_parsing() -> None:
    public = bytearray(HybridIdentity.generate().recipient().public_bytes)
    public[0], public[1] = 0xFF, public[1] | 0x0F  # first coefficient 4095, not below q = 3329
    text = _bech32.encode("age1pq", bytes(public))
    with pytest.raises(ValueError, match="ML-KEM-768 part"):
        parse_recipient(text)
    # The same key with that coefficient in range (0) parses: only the range is refused.
    public[0], public[1] = 0x00, public[1] & 0xF0
    assert HybridRecipient.parse(_bech32.encode("age1pq", bytes(public))).public_bytes == public
