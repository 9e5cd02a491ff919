"""A vault moves to its desk's new keys (ADR 0011): old reports keep opening with the
kept identity, the database is re-signed, a crash midway is finished or undone at the
next unlock, and a keyring from the server is adopted only when its keys descend from
the vault's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from journalist_client import vault as vault_mod
from journalist_client.importer import import_bundle
from journalist_client.vault import DB_FILE, Vault, VaultError, rotate_keys, unlock
from keys import fs
from keys.age import X25519Identity, parse_recipient
from keys.identity import TRANSITION_FILE, load_desk, rotate_desk
from keys.keyring import Desk, Keyring
from keys.signing import SigningKey
from keys.transition import sign_transition, verify_transition

from .conftest import FAST_SCRYPT, PASSPHRASE, Desks, Server, report_doc


def _new_keys(vault_dir: Path, tmp_path: Path, name: str = "triage-2") -> Path:
    rotate_desk(vault_dir / "keys", tmp_path / name, PASSPHRASE, work_factor=FAST_SCRYPT)
    return tmp_path / name


def _bundle_to(server: Server, recipient: str, text: str) -> Path:
    item = server.item(report_doc(description=text))
    item.recipients = [parse_recipient(recipient)]
    return server.bundle([item])


def test_old_and_new_reports_open_after_the_rotation(desk_vault: Vault, vault_dir: Path,
                                                     server: Server, tmp_path: Path) -> None:
    old = desk_vault.keys.desk
    import_bundle(desk_vault, server.bundle([server.item(report_doc(description="before"))]))
    desk_vault.close()
    new_dir = _new_keys(vault_dir, tmp_path)
    v = unlock(vault_dir, PASSPHRASE)
    kept = rotate_keys(v, new_dir, PASSPHRASE)
    v.close()
    assert kept == vault_dir / "keys" / "previous" / "1"
    assert sorted(fs.list_names(kept)) == ["desk.json", "identity.age"]  # no signing key

    v = unlock(vault_dir, PASSPHRASE)
    new = load_desk(new_dir, PASSPHRASE).desk
    assert v.keys.desk == new
    assert v.keys.desk.recipient != old.recipient
    # The vault's own keyring entry moved on, with the old key as previous.
    own = v.keyring().get("triage")
    assert own is not None
    assert own.same_keys(new)
    assert [p.verify_key for p in own.previous] == [old.verify_key]
    # A report encrypted to the new key, and the one from before, both open.
    result = import_bundle(v, _bundle_to(server, new.recipient, "after"))
    assert len(result.imported) == 1
    docs = [json.loads(r[0])["answers"]["description"]
            for r in v.conn.execute("SELECT doc FROM items")]
    assert sorted(docs) == ["after", "before"]
    # And one still encrypted to the old key (in flight during the rotation).
    result = import_bundle(v, _bundle_to(server, old.recipient, "in flight"))
    assert len(result.imported) == 1
    v.close()


def test_the_image_is_signed_by_the_new_key(desk_vault: Vault, vault_dir: Path,
                                            tmp_path: Path) -> None:
    old_keys = desk_vault.keys
    desk_vault.close()
    new_dir = _new_keys(vault_dir, tmp_path)
    v = unlock(vault_dir, PASSPHRASE)
    rotate_keys(v, new_dir, PASSPHRASE)
    v.close()
    with pytest.raises(VaultError, match="not signed by this desk's key"):
        vault_mod._read_image(vault_dir / DB_FILE, old_keys)
    vault_mod._read_image(vault_dir / DB_FILE, load_desk(new_dir, PASSPHRASE))


def test_keys_without_a_statement_from_this_vault_are_refused(
        desk_vault: Vault, vault_dir: Path, tmp_path: Path, desks: Desks) -> None:
    # Keys rotated from another desk's keys, and a statement that was removed.
    rotate_desk(desks.triage_dir.parent / "lawyers-keys", tmp_path / "lawyers-2", PASSPHRASE,
                work_factor=FAST_SCRYPT)
    with pytest.raises(VaultError, match="desk 'lawyers'"):
        rotate_keys(desk_vault, tmp_path / "lawyers-2", PASSPHRASE)
    new_dir = _new_keys(vault_dir, tmp_path)
    fs.safe_remove(new_dir / TRANSITION_FILE)
    with pytest.raises(VaultError, match="transition.txt is missing"):
        rotate_keys(desk_vault, new_dir, PASSPHRASE)
    with pytest.raises(VaultError, match="current keys already"):
        rotate_keys(desk_vault, vault_dir / "keys", PASSPHRASE)
    desk_vault.close()
    assert not (vault_dir / "keys" / "previous").exists()


def test_new_keys_under_another_passphrase_are_refused(desk_vault: Vault, vault_dir: Path,
                                                       tmp_path: Path) -> None:
    rotate_desk(vault_dir / "keys", tmp_path / "other", PASSPHRASE,
                new_passphrase="another passphrase entirely",  # noqa: S106 - test desk
                work_factor=FAST_SCRYPT)
    with pytest.raises(VaultError, match="do not open with this vault's passphrase"):
        rotate_keys(desk_vault, tmp_path / "other", PASSPHRASE)


@pytest.mark.parametrize("stage", ["keys staged", "image written", "half swapped"])
def test_a_rotation_cut_short_is_finished_or_undone(
        desk_vault: Vault, vault_dir: Path, server: Server, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    import_bundle(desk_vault, server.bundle([server.item(report_doc(description="kept"))]))
    old = desk_vault.keys.desk
    desk_vault.close()
    new_dir = _new_keys(vault_dir, tmp_path)
    new = load_desk(new_dir, PASSPHRASE).desk

    class Crash(Exception):
        pass

    if stage == "keys staged":
        def crash(self: Vault) -> None:
            raise Crash
        monkeypatch.setattr(Vault, "_write_full", crash)
    else:
        real = fs.atomic_write_bytes
        calls: list[Path] = []

        def crash_in_swap(path: fs.StrPath, data: bytes, *, overwrite: bool = False) -> Path:
            if overwrite and Path(path).parent == vault_dir / "keys":
                calls.append(Path(path))
                if stage == "image written" or len(calls) == 2:
                    raise Crash
            return real(path, data, overwrite=overwrite)
        monkeypatch.setattr(fs, "atomic_write_bytes", crash_in_swap)
    v = unlock(vault_dir, PASSPHRASE)
    with pytest.raises(Crash):
        rotate_keys(v, new_dir, PASSPHRASE)
    v.conn.close()
    os.close(v._lock)  # the process "died": its lock goes with it
    monkeypatch.undo()

    v = unlock(vault_dir, PASSPHRASE)
    assert not (vault_dir / "keys" / ".rotating.partial").exists()
    expected = old if stage == "keys staged" else new
    assert v.keys.desk.same_keys(expected)
    docs = [json.loads(r[0])["answers"]["description"]
            for r in v.conn.execute("SELECT doc FROM items")]
    assert docs == ["kept"]
    if stage == "keys staged":
        # Not done: it can be run again, and the old identity is kept once only.
        rotate_keys(v, new_dir, PASSPHRASE)
        assert v.keys.desk.same_keys(new)
        assert [p.name for p in (vault_dir / "keys" / "previous").iterdir()] == ["1"]
    v.close()


def test_the_server_keyring_is_adopted_only_when_it_descends(
        desk_vault: Vault, vault_dir: Path, server: Server, tmp_path: Path,
        desks: Desks) -> None:
    keyring = desk_vault.keyring()
    lawyers = keyring.get("lawyers")
    assert lawyers is not None
    # A rotation of the lawyers desk, signed by its old key: adopted.
    ident, signing = X25519Identity.generate(), SigningKey.generate()
    new_lawyers = Desk.create("lawyers", dict(lawyers.names), str(ident.recipient()),
                              str(signing.verify_key))
    t = verify_transition(sign_transition(
        "lawyers", old_recipient=lawyers.recipient, old_key=desks.lawyers.signing_key,
        new_recipient=new_lawyers.recipient, new_key=signing),
        old_verify_key=lawyers.verify_key)
    rotated = keyring.replacing(lawyers.replaced_by(new_lawyers, day="2026-12-04",
                                                    transition=t))
    notes = desk_vault.adopt_keyring(rotated)
    assert any("desk lawyers: new keys" in n and "adopted" in n for n in notes)
    assert desk_vault.keyring().get("lawyers") == rotated.get("lawyers")
    # Keys for triage that triage's key never signed for: not adopted, and said so.
    forged = Desk.create("triage", {"en": "t", "ar": "t", "fr": "t"},
                         str(X25519Identity.generate().recipient()),
                         str(SigningKey.generate().verify_key))
    notes = desk_vault.adopt_keyring(Keyring([forged, *rotated.desks[1:]]))
    assert any("NOT adopted" in n for n in notes)
    assert desk_vault.keyring().get("triage") == keyring.get("triage")
    history = [r[0] for r in desk_vault.conn.execute(
        "SELECT new FROM history WHERE field = 'keyring'")]
    assert len(history) == 1


def test_a_new_vault_takes_a_keyring_in_which_its_desk_was_rotated(
        tmp_path: Path, desks: Desks, fast_scrypt: None) -> None:
    # A second machine of the desk, set up after the rotation with the new keyring.
    new, text = rotate_desk(desks.triage_dir, tmp_path / "triage-2", PASSPHRASE,
                            work_factor=FAST_SCRYPT)
    keyring = Keyring.load(desks.keyring_path)
    old = keyring.get("triage")
    assert old is not None
    t = verify_transition(text, old_verify_key=old.verify_key)
    rotated = keyring.replacing(old.replaced_by(new, day="2026-12-04", transition=t))
    rotated.save(tmp_path / "rotated.json")
    v = vault_mod.create_vault(tmp_path / "v2", PASSPHRASE, import_keys=tmp_path / "triage-2",
                               keyring_path=tmp_path / "rotated.json")
    assert v.keyring().get("triage") == rotated.get("triage")
    v.close()
