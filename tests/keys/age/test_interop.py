"""Interop both ways with the reference `age` binary and with pyrage (rage).

Sizes straddle the 64 KiB chunk boundary, plus empty, one byte and 3 MiB;
files with two recipients; armored and binary.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pyrage
import pytest

from keys.age import X25519Identity, decrypt, encrypt

SIZES = [0, 1, 65535, 65536, 65537, 3 * 1024 * 1024]


def _plaintext(size: int) -> bytes:
    # Deterministic, non-repeating bytes so that a misplaced chunk cannot pass.
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def keypairs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[X25519Identity], Path]:
    identities = [X25519Identity.generate(), X25519Identity.generate()]
    folder = tmp_path_factory.mktemp("ids")
    for n, identity in enumerate(identities):
        (folder / f"id{n}.txt").write_text(f"# test identity\n{identity}\n")
    return identities, folder


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
@pytest.mark.parametrize("size", SIZES)
def test_age_binary_decrypts_ours(
    age_binary: str,
    keypairs: tuple[list[X25519Identity], Path],
    size: int,
    armor: bool,
    tmp_path: Path,
) -> None:
    identities, folder = keypairs
    data = _plaintext(size)
    encrypted = tmp_path / "file.age"
    encrypted.write_bytes(encrypt(data, [i.recipient() for i in identities], armor=armor))
    for n in range(2):  # each of the two recipients opens it
        out = subprocess.run(
            [age_binary, "-d", "-i", str(folder / f"id{n}.txt"), str(encrypted)],
            capture_output=True,
            check=True,
        )
        assert out.stdout == data


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_age_binary(
    age_binary: str,
    keypairs: tuple[list[X25519Identity], Path],
    size: int,
    armor: bool,
    tmp_path: Path,
) -> None:
    identities, _ = keypairs
    data = _plaintext(size)
    source = tmp_path / "plain"
    source.write_bytes(data)
    args = [age_binary, "-e", *(["-a"] if armor else [])]
    for identity in identities:
        args += ["-r", str(identity.recipient())]
    out = subprocess.run([*args, str(source)], capture_output=True, check=True)
    for identity in identities:
        assert decrypt(out.stdout, [identity]) == data


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
@pytest.mark.parametrize("size", SIZES)
def test_pyrage_both_ways(size: int, armor: bool) -> None:
    data = _plaintext(size)
    ours = X25519Identity.generate()
    theirs = pyrage.x25519.Identity.generate()
    recipients = [ours.recipient(), X25519Identity.generate().recipient()]
    # ours -> rage
    ours_to_theirs = encrypt(
        data, [X25519Identity.parse(str(theirs)).recipient(), *recipients], armor=armor
    )
    assert pyrage.decrypt(ours_to_theirs, [theirs]) == data
    # rage -> ours
    rage_file = pyrage.encrypt(
        data, [pyrage.x25519.Recipient.from_str(str(r)) for r in recipients], armored=armor
    )
    assert decrypt(rage_file, [ours]) == data


def test_pyrage_passphrase_both_ways() -> None:
    from keys.age import ScryptIdentity, ScryptRecipient

    data = _plaintext(70000)
    ours = encrypt(data, [ScryptRecipient("correct horse battery staple", work_factor=10)])
    assert pyrage.passphrase.decrypt(ours, "correct horse battery staple") == data
    theirs = pyrage.passphrase.encrypt(data, "correct horse battery staple")
    assert decrypt(theirs, [ScryptIdentity("correct horse battery staple")]) == data
