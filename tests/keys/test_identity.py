"""Desk key generation and storage, and the atomic file helper under it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keys._fs import (
    AtomicWriter,
    FileExistsRefused,
    is_stream_sink,
    open_stream_sink,
    safe_mkdir,
    safe_write_bytes,
)
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


# --- keys._fs ------------------------------------------------------------------------


def test_atomic_writer_commits_with_0600(tmp_path: Path) -> None:
    target = tmp_path / "f"
    with AtomicWriter(target) as w:
        w.write(b"data")
        assert not target.exists()
        assert w.partial_path.exists()
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_atomic_writer_aborts_on_exception(tmp_path: Path) -> None:
    target = tmp_path / "f"

    def write_then_fail() -> None:
        with AtomicWriter(target) as w:
            w.write(b"half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "f"
    safe_write_bytes(target, b"old")
    with pytest.raises(FileExistsRefused):
        safe_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    safe_write_bytes(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"


def test_race_at_commit_does_not_clobber(tmp_path: Path) -> None:
    target = tmp_path / "f"
    w = AtomicWriter(target)
    w.write(b"mine")
    target.write_bytes(b"theirs")  # appears between the check and the commit
    with pytest.raises(FileExistsRefused):
        w.commit()
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_symlink_destination_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(FileExistsRefused):
        safe_write_bytes(tmp_path / "link", b"x")
    assert victim.read_bytes() == b"keep"


def _device_node(path: Path) -> Path:
    """A private null device in a temporary directory (never the real /dev/null)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


def test_overwrite_never_replaces_a_non_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    (tmp_path / "target").write_bytes(b"t")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    device = _device_node(tmp_path / "null")
    for node in (fifo, tmp_path / "dir", tmp_path / "link", device):
        with pytest.raises(FileExistsRefused, match="not a regular file"):
            safe_write_bytes(node, b"x", overwrite=True)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "fifo", "link", "null", "target"]


def test_stream_sinks(tmp_path: Path) -> None:
    device = _device_node(tmp_path / "null")
    assert is_stream_sink(device)
    assert not is_stream_sink(tmp_path)
    assert not is_stream_sink(tmp_path / "missing")
    (tmp_path / "f").write_bytes(b"")
    assert not is_stream_sink(tmp_path / "f")
    with open_stream_sink(device) as sink:
        sink.write(b"discarded")
    assert stat.S_ISCHR(device.lstat().st_mode)
    with pytest.raises(FileExistsRefused):
        open_stream_sink(tmp_path / "f")


def test_safe_mkdir(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        d = safe_mkdir(tmp_path / "d")
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    with pytest.raises(FileExistsRefused):
        safe_mkdir(d)
    assert safe_mkdir(d, exist_ok=True) == d
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        safe_mkdir(tmp_path / "file", exist_ok=True)


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
