"""Desk key generation and storage (the file helpers under it: test_fs.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keys.age import (
    HybridIdentity,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    decrypt,
    encrypt,
)
from keys.identity import DeskError, generate_desk, load_desk, read_identities
from keys.keyring import load_desk_entry

NAMES = {"en": "SMEX", "ar": "سمكس", "fr": "SMEX"}
PASS = "correct horse battery staple"  # noqa: S105 - a test passphrase
WF = 10  # scrypt work factor for tests; the CLI and library default is 18, as age -p


# --- keys.identity -------------------------------------------------------------------


def test_generate_and_load(tmp_path: Path) -> None:
    out = tmp_path / "smex"
    desk = generate_desk("smex", NAMES, out, PASS, work_factor=WF)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert sorted(p.name for p in out.iterdir()) == ["desk.json", "identity.age", "signing.age"]
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert load_desk_entry(out / "desk.json") == desk
    assert desk.recipient.startswith("age1")
    assert not desk.recipient.startswith("age1pq1")

    keys = load_desk(out, PASS)
    assert keys.desk == desk
    assert str(keys.signing_key.verify_key) == desk.verify_key
    assert isinstance(keys.identity, X25519Identity)
    assert decrypt(encrypt(b"report", [keys.identity.recipient()]), [keys.identity]) == b"report"
    assert PASS not in repr(keys)
    assert str(keys.identity) not in repr(keys)


def test_identity_file_is_an_armored_age_identity_file(tmp_path: Path) -> None:
    desk = generate_desk("smex", NAMES, tmp_path / "d", PASS, work_factor=WF)
    data = (tmp_path / "d" / "identity.age").read_bytes()
    assert data.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    text = decrypt(data, [ScryptIdentity(PASS)]).decode()
    lines = text.splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1] == f"# public key: {desk.recipient}"
    assert lines[-1].startswith("AGE-SECRET-KEY-1")
    assert read_identities(data, lambda: PASS)[0].recipient() is not None


def test_pq_desk(tmp_path: Path) -> None:
    desk = generate_desk("pq", NAMES, tmp_path / "d", PASS, pq=True, work_factor=WF)
    assert desk.recipient.startswith("age1pq1")
    keys = load_desk(tmp_path / "d", PASS)
    assert isinstance(keys.identity, HybridIdentity)


def test_wrong_passphrase(tmp_path: Path) -> None:
    generate_desk("smex", NAMES, tmp_path / "d", PASS, work_factor=WF)
    with pytest.raises(DeskError, match="wrong passphrase"):
        load_desk(tmp_path / "d", PASS + "!")


def test_refuses_to_overwrite_a_desk(tmp_path: Path) -> None:
    generate_desk("smex", NAMES, tmp_path / "d", PASS, work_factor=WF)
    before = {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()}
    with pytest.raises(DeskError, match="refusing to overwrite"):
        generate_desk("smex", NAMES, tmp_path / "d", PASS, work_factor=WF)
    assert {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()} == before


def test_invalid_inputs(tmp_path: Path) -> None:
    with pytest.raises(DeskError, match="too short"):
        generate_desk("smex", NAMES, tmp_path / "d", "short", work_factor=WF)
    with pytest.raises(DeskError, match="'id' must match"):
        generate_desk("Bad Id", NAMES, tmp_path / "d", PASS, work_factor=WF)
    with pytest.raises(DeskError, match="names.ar"):
        generate_desk("smex", {**NAMES, "ar": ""}, tmp_path / "d", PASS, work_factor=WF)
    assert not (tmp_path / "d").exists()


def test_mismatched_files_are_detected(tmp_path: Path) -> None:
    generate_desk("a", NAMES, tmp_path / "a", PASS, work_factor=WF)
    generate_desk("b", NAMES, tmp_path / "b", PASS, work_factor=WF)
    os.replace(tmp_path / "b" / "identity.age", tmp_path / "a" / "identity.age")
    with pytest.raises(DeskError, match="identity.age does not belong to desk 'a'"):
        load_desk(tmp_path / "a", PASS)
    generate_desk("c", NAMES, tmp_path / "c", PASS, work_factor=WF)
    (tmp_path / "c" / "signing.age").unlink()
    with pytest.raises(DeskError, match="signing.age is missing"):
        load_desk(tmp_path / "c", PASS)


def test_read_identities_plain_and_encrypted() -> None:
    ident = X25519Identity.generate()
    plain = f"# a comment\n\n{ident}\n".encode()
    never = lambda: pytest.fail("a plain identity file needs no passphrase")  # noqa: E731
    assert str(read_identities(plain, never)[0]) == str(ident)
    locked = encrypt(plain, [ScryptRecipient(PASS, WF)])
    assert str(read_identities(locked, lambda: PASS)[0]) == str(ident)
    with pytest.raises(DeskError, match="wrong passphrase"):
        read_identities(locked, lambda: "nope")
    with pytest.raises(DeskError, match="line 1"):
        read_identities(b"AGE-SECRET-KEY-1NOTVALID\n", lambda: PASS)
