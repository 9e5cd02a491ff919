"""keys.age beyond the vectors: edge sizes, streaming, key encodings, refusals, memory."""

from __future__ import annotations

import io
import subprocess
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.age import (
    CHUNK_SIZE,
    Encryptor,
    HeaderError,
    HybridIdentity,
    NoMatchError,
    PayloadError,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    decrypt,
    decrypt_stream,
    encrypt,
    parse_identity,
    parse_identity_file,
    parse_recipient,
)
from keys.age._format import read_header
from keys.age._stream import StreamWriter, payload_key
from keys.age.armor import ArmorReader, ArmorWriter

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "age"
EDGE_SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 1]


def _vector(name: str) -> tuple[dict[str, str], bytes]:
    preamble, _, body = (VECTORS / name).read_bytes().partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in preamble.decode().splitlines())
    if fields.get("compressed") == "zlib":
        body = zlib.decompress(body)
    return fields, body


def _success_vectors(armored: bool) -> list[str]:
    names = []
    for path in sorted(VECTORS.iterdir()):
        if path.suffix == ".md":
            continue
        fields, _ = _vector(path.name)
        if fields["expect"] == "success" and (fields.get("armored") == "yes") == armored:
            names.append(path.name)
    return names


@pytest.mark.parametrize("size", EDGE_SIZES)
@pytest.mark.parametrize("kind", ["x25519", "hybrid"])
def test_round_trip_edge_sizes(size: int, kind: str) -> None:
    identity = X25519Identity.generate() if kind == "x25519" else HybridIdentity.generate()
    data = bytes(i % 251 for i in range(size))
    ciphertext = encrypt(data, [identity.recipient()])
    assert decrypt(ciphertext, [identity]) == data
    header_end = ciphertext.index(b"\n---") + len(b"\n--- ") + 43 + 1
    chunks = max(1, -(-size // CHUNK_SIZE))
    # Exactly one 16-byte tag per chunk, after the 16-byte nonce: no padding, no extra chunk.
    assert len(ciphertext) - header_end == 16 + size + 16 * chunks


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 5),
    cuts=st.lists(st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 5), max_size=8),
)
def test_push_encryptor_any_write_pattern(size: int, cuts: list[int]) -> None:
    identity = X25519Identity.generate()
    data = bytes(i % 253 for i in range(size))
    out = io.BytesIO()
    with Encryptor(out, [identity.recipient()]) as enc:
        points = sorted({0, size, *(c for c in cuts if c <= size)})
        for start, end in zip(points, points[1:], strict=False):
            enc.write(data[start:end])
    assert b"".join(decrypt_stream(io.BytesIO(out.getvalue()), [identity])) == data


class _OnlyWrite:
    """A keys.age.Writer with nothing but write(), like a Go io.Writer."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.parts.append(bytes(data))


class _OnlyRead:
    """A keys.age.Reader with nothing but read(n), returning short reads."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, size: int) -> bytes:
        n = min(size, 1000)  # never more than 1000 bytes at once, like a slow socket
        piece, self._data = self._data[:n], self._data[n:]
        return piece


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
@pytest.mark.parametrize("armored", [None, "as written"])
def test_any_writer_and_reader_will_do(armor: bool, armored: str | None) -> None:
    identity = X25519Identity.generate()
    data = bytes(i % 251 for i in range(2 * CHUNK_SIZE + 7))
    sink = _OnlyWrite()
    with Encryptor(sink, [identity.recipient()], armor=armor) as enc:
        enc.write(memoryview(data)[:CHUNK_SIZE])
        enc.write(data[CHUNK_SIZE:])
    ciphertext = b"".join(sink.parts)
    assert ciphertext.startswith(b"-----BEGIN" if armor else b"age-encryption.org/v1\n")
    flag = None if armored is None else armor
    chunks = list(decrypt_stream(_OnlyRead(ciphertext), [identity], armored=flag))
    assert b"".join(chunks) == data
    # An Encryptor is a Writer too: encryptions compose, as age's io.WriteCloser does.
    outer, inner_sink = X25519Identity.generate(), _OnlyWrite()
    with (
        Encryptor(inner_sink, [outer.recipient()]) as outer_enc,
        Encryptor(outer_enc, [identity.recipient()]) as inner_enc,
    ):
        inner_enc.write(data)
    assert decrypt(decrypt(b"".join(inner_sink.parts), [outer]), [identity]) == data


def test_unfinished_file_never_decrypts_to_a_shorter_plaintext() -> None:
    identity = X25519Identity.generate()
    out = io.BytesIO()

    def upload_cut_midway() -> None:
        with Encryptor(out, [identity.recipient()]) as enc:
            enc.write(b"x" * (3 * CHUNK_SIZE))
            raise RuntimeError("the upload was cut")

    with pytest.raises(RuntimeError):
        upload_cut_midway()
    with pytest.raises(PayloadError):
        decrypt(out.getvalue(), [identity])


def test_every_truncation_is_a_payload_failure() -> None:
    identity = X25519Identity.generate()
    ciphertext = encrypt(b"y" * (CHUNK_SIZE + 100), [identity.recipient()])
    header_end = ciphertext.index(b"\n---") + len(b"\n--- ") + 43 + 1
    for cut in (header_end + 16, header_end + 40, header_end + 16 + CHUNK_SIZE + 16, -1):
        with pytest.raises(PayloadError):
            decrypt(ciphertext[:cut], [identity])


def test_wrong_identity_is_no_match_and_scrypt_cost_is_capped() -> None:
    ciphertext = encrypt(b"report", [X25519Identity.generate().recipient()])
    with pytest.raises(NoMatchError):
        decrypt(ciphertext, [X25519Identity.generate()])
    expensive = encrypt(b"report", [ScryptRecipient("pass", work_factor=12)])
    with pytest.raises(HeaderError, match="over the limit"):
        decrypt(expensive, [ScryptIdentity("pass", max_work_factor=11)])
    assert decrypt(expensive, [ScryptIdentity("pass")]) == b"report"


def test_recipient_sets_that_would_weaken_a_file_are_refused() -> None:
    classic = X25519Identity.generate().recipient()
    quantum = HybridIdentity.generate().recipient()
    with pytest.raises(ValueError, match="post-quantum and classic"):
        encrypt(b"x", [classic, quantum])
    with pytest.raises(ValueError, match="only recipient"):
        encrypt(b"x", [ScryptRecipient("p", work_factor=10), classic])
    with pytest.raises(ValueError, match="no recipients"):
        encrypt(b"x", [])


def test_key_encodings_match_age_keygen(system_tool: object, tmp_path: Path) -> None:
    keygen = system_tool("age-keygen")  # type: ignore[operator]
    out = subprocess.run([keygen], capture_output=True, text=True, check=True).stdout
    public = next(line.split(": ")[1] for line in out.splitlines() if "public key" in line)
    secret = next(line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-1"))
    identity = parse_identity(secret)
    assert str(identity.recipient()) == public
    assert str(identity) == secret
    assert str(parse_recipient(public)) == public


@pytest.mark.parametrize(
    "text",
    [
        "age1",  # no data
        "AGE1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS3290GQ",  # upper-case recipient
        "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gp",  # bad checksum
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # another HRP
        "age1pq1qqqq",
        "age1" + "q" * 52 + "5cu47z",  # the all-zero point: every shared secret would be 0
    ],
)
def test_malformed_recipients_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"recipient|Bech32|checksum|mixed|1216|X25519"):
        parse_recipient(text)


def test_identity_file_errors_name_the_line_not_the_secret() -> None:
    secret = str(X25519Identity.generate())
    broken = secret[:-1] + ("q" if secret[-1] != "q" else "p")
    with pytest.raises(ValueError, match="line 4") as excinfo:
        parse_identity_file(f"# comment\n\n{secret}\n{broken}\n")
    assert "line 4" in str(excinfo.value)
    assert secret[16:] not in str(excinfo.value)
    assert broken[16:] not in str(excinfo.value)
    assert secret not in repr(X25519Identity.parse(secret))


def test_x25519_recipient_wraps_only_what_it_should() -> None:
    recipient = X25519Identity.generate().recipient()
    assert X25519Recipient.parse(str(recipient)) == recipient
    (stanza,) = recipient.wrap(bytes(16))
    assert (stanza.type, len(stanza.args), len(stanza.body)) == ("X25519", 1, 32)


@pytest.mark.parametrize(
    "name",
    [
        p.name
        for p in sorted(VECTORS.iterdir())
        if p.suffix != ".md"
        and _vector(p.name)[0]["expect"] not in ("header failure", "armor failure")
        and _vector(p.name)[0].get("armored") != "yes"
    ],
)
def test_header_reencodes_to_the_same_bytes(name: str) -> None:
    _, body = _vector(name)
    src = io.BytesIO(body)
    header = read_header(src)
    from keys.age._format import encode_header_without_mac

    assert encode_header_without_mac(list(header.stanzas)) == header.mac_input
    assert body.startswith(header.mac_input)


@pytest.mark.parametrize("name", _success_vectors(armored=False))
def test_stream_reencrypts_to_the_same_payload(name: str) -> None:
    fields, body = _vector(name)
    src = io.BytesIO(body)
    read_header(src)
    nonce, payload = src.read(16), src.read()
    identities = [parse_identity(s) for s in [fields["identity"]] if "identity" in fields]
    identities += [ScryptIdentity(fields["passphrase"])] if "passphrase" in fields else []
    plaintext = decrypt(body, identities)
    out = io.BytesIO()
    writer = StreamWriter(out, payload_key(bytes.fromhex(fields["file key"]), nonce))
    writer.write(plaintext)
    writer.close()
    assert out.getvalue() == payload


@pytest.mark.parametrize("name", _success_vectors(armored=True))
def test_armor_round_trips(name: str) -> None:
    _, body = _vector(name)
    inner = io.BufferedReader(ArmorReader(io.BufferedReader(io.BytesIO(body)))).read()
    out = io.BytesIO()
    writer = ArmorWriter(out)
    writer.write(inner)
    writer.close()
    normalised = body.replace(b"\r\n", b"\n").strip() + b"\n"
    assert out.getvalue() == normalised


def test_streaming_memory_is_bounded_by_a_few_chunks() -> None:
    identity = X25519Identity.generate()
    block = bytes(range(256)) * 256  # 64 KiB

    class Sink:  # a keys.age.Writer: nothing but write()
        def __init__(self) -> None:
            self.size = 0
            self.kept = io.BytesIO()

        def write(self, data: bytes | bytearray | memoryview) -> int:
            self.size += len(data)
            if self.kept.tell() < 2 * CHUNK_SIZE:
                self.kept.write(data)
            return len(data)

    sink = Sink()
    tracemalloc.start()
    try:
        with Encryptor(sink, [identity.recipient()]) as enc:
            for _ in range(512):  # 32 MiB
                enc.write(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.size > 32 * 1024 * 1024
    assert peak < 8 * CHUNK_SIZE, f"encrypting 32 MiB peaked at {peak} bytes"


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
def test_decrypting_memory_is_bounded_by_a_few_chunks(tmp_path: Path, armor: bool) -> None:
    identity = X25519Identity.generate()
    path = tmp_path / "big.age"
    with path.open("wb") as out, Encryptor(out, [identity.recipient()], armor=armor) as enc:
        for n in range(256):  # 16 MiB
            enc.write(n.to_bytes(2, "big") * (CHUNK_SIZE // 2))
    total = 0
    tracemalloc.start()
    try:
        with path.open("rb") as src:
            for chunk in decrypt_stream(src, [identity]):
                total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 256 * CHUNK_SIZE
    assert peak < 16 * CHUNK_SIZE, f"decrypting 16 MiB peaked at {peak} bytes"
