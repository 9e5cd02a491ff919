"""The vault: encrypted and signed at rest, crash-safe saves, no plaintext on disk."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from journalist_client import replies, triage
from journalist_client.importer import import_bundle
from journalist_client.vault import (
    DB_FILE,
    MAGIC,
    Vault,
    VaultError,
    _write_image,
    create_vault,
    unlock,
)
from keys.identity import DeskKeys
from keys.signing import SigningKey

from .conftest import PASSPHRASE, Desks, Server, report_doc


def test_unlock_round_trip(desk_vault: Vault, vault_dir: Path) -> None:
    desk_vault.set_meta("probe", "value")
    desk_vault.save()
    desk_vault.close()
    again = unlock(vault_dir, PASSPHRASE)
    assert again.meta("probe") == "value"
    assert again.user == "rania"
    assert again.keyring().get("lawyers") is not None
    assert again.conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY


def test_layout_and_modes(desk_vault: Vault, vault_dir: Path) -> None:
    assert sorted(p.name for p in vault_dir.iterdir()) == [
        ".lock", "acks", "files", "keys", "outbox", "quarantine", "triage.vault", "vault.json"]
    assert (vault_dir.stat().st_mode & 0o777) == 0o700
    assert ((vault_dir / DB_FILE).stat().st_mode & 0o777) == 0o600
    assert (vault_dir / DB_FILE).read_bytes().startswith(MAGIC + b"age-encryption.org/v1\n")


def test_wrong_passphrase(desk_vault: Vault, vault_dir: Path) -> None:
    desk_vault.close()
    with pytest.raises(VaultError, match="wrong passphrase"):
        unlock(vault_dir, "not the passphrase at all")


def test_generate_new_desk_keys(tmp_path: Path, fast_scrypt: None) -> None:
    v = create_vault(tmp_path / "v", PASSPHRASE, desk_id="smex")
    assert v.desk_id == "smex"
    v.close()
    assert unlock(tmp_path / "v", PASSPHRASE).keyring().get("smex") is not None
    with pytest.raises(VaultError, match="not empty"):
        create_vault(tmp_path / "v", PASSPHRASE, desk_id="smex")


def test_keyring_with_other_keys_for_this_desk_is_refused(tmp_path: Path, desks: Desks,
                                                         fast_scrypt: None) -> None:
    with pytest.raises(VaultError, match="other keys"):
        create_vault(tmp_path / "v", PASSPHRASE, desk_id="triage",
                     keyring_path=desks.keyring_path)


@pytest.mark.parametrize("offset", [0, 20, 200, -70, -1])
def test_a_tampered_vault_is_refused(desk_vault: Vault, vault_dir: Path, offset: int) -> None:
    path = vault_dir / DB_FILE
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    desk_vault.close()
    with pytest.raises(VaultError):
        unlock(vault_dir, PASSPHRASE)


def test_a_forged_vault_encrypted_to_the_desk_is_refused(desk_vault: Vault,
                                                         vault_dir: Path) -> None:
    # Anyone can encrypt to the desk's public recipient; only the desk can sign.
    attacker = SigningKey.generate()
    desk_vault.set_meta("server_key", str(attacker.verify_key))
    forged_keys = DeskKeys(desk_vault.keys.desk, desk_vault.keys.identity, attacker)
    _write_image(vault_dir / DB_FILE, desk_vault.conn.serialize(), forged_keys)
    desk_vault.close()
    with pytest.raises(VaultError, match="not signed by this desk"):
        unlock(vault_dir, PASSPHRASE)


_SAVER = r"""
import os, sys
from journalist_client.vault import unlock
v = unlock(sys.argv[1], sys.argv[2])
blob = os.urandom(8 * 1024 * 1024).hex()
i = int(v.meta("counter") or 0)
while True:
    i += 1
    v.set_meta("counter", str(i))
    v.set_meta("blob", blob[: (i % 7 + 1) * 2_000_000])
    v.save()
    print(i, flush=True)
"""


@pytest.mark.slow
def test_kill_9_during_save_leaves_a_whole_vault(desk_vault: Vault, vault_dir: Path) -> None:
    desk_vault.close()
    last = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(vault_dir), PASSPHRASE],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        done = int(proc.stdout.readline())
        # Kill at a different point of the next save each time.
        time.sleep(0.01 + attempt * 0.023)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        v = unlock(vault_dir, PASSPHRASE)
        counter = int(v.meta("counter") or 0)
        # Whichever save was last complete, all of it is there and nothing of the next.
        assert counter >= done
        assert counter > last
        assert len(v.meta("blob") or "") == (counter % 7 + 1) * 2_000_000
        last = counter
        v.close()
        assert not list(vault_dir.glob(".*.partial"))


_HALF_WRITTEN = r"""
import os, sys
from keys import fs
w = fs.AtomicWriter(sys.argv[1])
w.write(b"age ciphertext, half of it")
w.file.flush()
os._exit(9)  # killed mid-write: the hidden partial file stays
"""


@pytest.mark.parametrize("sub", ["files", "quarantine", "outbox", "acks"])
def test_unlock_removes_what_a_killed_write_left_in_the_vault(
        desk_vault: Vault, vault_dir: Path, sub: str) -> None:
    """An import killed while it extracted an attachment (or wrote an ack, or queued a
    reply) leaves AtomicWriter's hidden partial file; found by test_crash_client.py.
    Only a process holding the vault's lock writes there, so the next unlock removes it."""
    desk_vault.close()
    target = vault_dir / sub / f"{secrets.token_hex(16)}.a1.age"
    subprocess.run([sys.executable, "-c", _HALF_WRITTEN, str(target)], check=False,
                   timeout=60)
    assert [p.name for p in (vault_dir / sub).iterdir() if p.name.endswith(".partial")]
    unlock(vault_dir, PASSPHRASE).close()
    assert list((vault_dir / sub).iterdir()) == []


CANARY = f"CANARY-{secrets.token_hex(6)}-شاهد-ÉVIDENCE"


def test_no_plaintext_reaches_the_disk(desk_vault: Vault, server: Server, vault_dir: Path,
                                       tmp_path: Path) -> None:
    started = time.time() - 1
    doc = report_doc(description=CANARY, incident_date=CANARY, device_details=CANARY)
    doc["answers"]["indicators"] = {"links": CANARY, "senders": CANARY, "messages": CANARY}
    it = server.item(doc)
    import_bundle(desk_vault, server.bundle([it]), progress=False)
    triage.add_note(desk_vault, it.id, f"note {CANARY}")
    triage.set_fields(desk_vault, it.id, assign="rania", tags=["canary"])
    replies.add_reply(desk_vault, it.id, f"reply {CANARY}")
    assert triage.run_search(desk_vault, "canary")
    desk_vault.save()
    needles = [CANARY.encode(), CANARY.encode("utf-16-le"), CANARY.split("-")[1].encode()]
    roots = [vault_dir, Path(tempfile.gettempdir())]
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for name in files:
                p = Path(dirpath) / name
                try:
                    if p.is_symlink() or not p.is_file() or p.stat().st_mtime < started:
                        continue
                    if tmp_path in p.parents and vault_dir not in p.parents:
                        continue  # the test's own bundle (the server side) and key fixtures
                    data = p.read_bytes()
                except OSError:
                    continue
                for needle in needles:
                    assert needle not in data, f"plaintext found in {p}"


def test_save_is_small_io_bounded(desk_vault: Vault, vault_dir: Path) -> None:
    # The image is streamed through the encryptor; the result opens with the identity.
    desk_vault.set_meta("x", "y" * 3_000_000)
    desk_vault.save()
    desk_vault.close()
    assert unlock(vault_dir, PASSPHRASE).meta("x") == "y" * 3_000_000


def test_one_command_at_a_time(desk_vault: Vault, vault_dir: Path) -> None:
    with pytest.raises(VaultError, match="another journalist-client"):
        unlock(vault_dir, PASSPHRASE)
    desk_vault.close()
    unlock(vault_dir, PASSPHRASE).close()
