"""The demo's desks are desks the offline client takes as documented (issue 14)."""

from __future__ import annotations

from pathlib import Path

from intake_server.install import init_demo
from journalist_client.vault import unlock
from keys.age import decrypt, encrypt, parse_identity_file, parse_recipient
from keys.keyring import Keyring
from support.e2e import run


def test_the_client_imports_a_demo_desk_with_its_passphrase_file(tmp_path: Path) -> None:
    demo = init_demo(tmp_path / "demo", port=8080).parent
    desk_dir = demo / "desks" / "triage"
    passphrase_file = desk_dir / "passphrase.txt"
    assert (desk_dir / "passphrase.txt").stat().st_mode & 0o777 == 0o600
    server_key = (demo / "server-verify.key").read_text().split()[-1]
    vault_dir = tmp_path / "vault"
    # As docs/client.md and the README write it.
    out = run("journalist-client", "--vault", str(vault_dir), "--passphrase-file",
              str(passphrase_file), "init", "--import-keys", str(desk_dir),
              "--keyring", str(demo / "keyring.json"), "--server-key", server_key,
              cwd=tmp_path)
    assert "for desk triage" in out
    listed = Keyring.load(demo / "keyring.json").get("triage")
    assert listed is not None
    vault = unlock(vault_dir, passphrase_file.read_text().strip())
    try:
        assert vault.keys.desk == listed
        # What the demo server encrypts to the desk, this vault opens; and the
        # unprotected identity.txt beside it (for `age -d -i`) is the same identity.
        report = encrypt(b"a report", [parse_recipient(listed.recipient)])
        assert decrypt(report, [vault.keys.identity]) == b"a report"
        unprotected = parse_identity_file((desk_dir / "identity.txt").read_text())
        assert decrypt(report, unprotected) == b"a report"
    finally:
        vault.close()
