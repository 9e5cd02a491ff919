"""Files at rest on the triage machine (issue 13, item 9; issue 18, what a seized
machine shows).

Whatever the umask, every file journalist-client leaves is 0600 and every directory
0700, and none keeps a time finer than the UTC day. After *each* command (init, import
with a quarantined item, import with --ack-out, set, note, reply, refer, outbox bundle,
and the read-only list, show, search, history and quarantine) the one walker
(support.files_at_rest) goes over the whole vault, the ack and outbox bundles written
outside it, and the TMPDIR the client ran with: modes and days (a read must leave no
access time either), no plaintext (a canary in the report, its attachment's name and
content, the note and the reply, in every encoding), and no temp file left behind.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from journalist_client.cli import main
from journalist_client.records import Report
from journalist_client.triage import show_item
from journalist_client.vault import unlock
from support.canary import encodings
from support.files_at_rest import assert_private_and_dated, search, walk

from .conftest import PASSPHRASE, Desks, Server, attachment_meta, report_doc


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_used_vault_is_private_and_dated_to_the_day(
        tmp_path: Path, desks: Desks, server: Server, passfile: Path, fast_scrypt: None,
        umask: int, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    vault_dir, usb, tmp = tmp_path / "vault", tmp_path / "usb", tmp_path / "client-tmp"
    usb.mkdir()
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again

    canary = "CANARY-vault-7d1e شاهد"
    file_name = "ORIGINAL-NAME-5b2c.png"
    needles = {f"{what} ({enc})": v for what, text in
               (("canary", canary), ("file name", file_name))
               for enc, v in encodings(text).items()}

    def check(step: str) -> None:
        found = list(walk(vault_dir)) + [
            e for p in usb.iterdir() if p.name.endswith(".bundle") for e in walk(p)]
        try:
            assert_private_and_dated(found)
        except AssertionError as e:
            raise AssertionError(f"after {step}: {e}") from None
        assert list(tmp.iterdir()) == [], f"a temp file after {step}"
        assert search([vault_dir, usb, tmp], needles) == [], f"after {step}"

    def run(*args: str) -> str:
        code = main(["--vault", str(vault_dir), "--passphrase-file", str(passfile), *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        check(args[0])
        return out

    data = canary.encode() * 1000
    good = report_doc(description=canary)
    good["attachments"] = [attachment_meta(data, name=file_name)]
    items = [server.item(good, [data]), server.item(b"{not json")]
    reply = tmp_path / "reply.txt"
    reply.write_text(f"we read it: {canary}")
    old = os.umask(umask)
    try:
        run("init", "--import-keys", str(desks.triage_dir), "--keyring",
            str(desks.keyring_path), "--server-key", str(server.key.verify_key))
        assert "1 quarantined" in run("import", str(server.bundle(items)))
        run("import", "--ack-out", str(usb / "ack.bundle"), str(server.bundle([])))
        run("set", items[0].id[:8], "--status", "triaged")
        run("note", items[0].id[:8], f"note: {canary}")
        run("reply", items[0].id[:8], "--file", str(reply))
        run("refer", items[0].id[:8], "--to", "lawyers", "--note", canary)
        run("outbox", "bundle", "--out", str(usb / "outbox.bundle"))
        # Commands that only read: the unlock must not leave its moment in an atime.
        run("list")
        run("show", items[0].id[:8])
        run("search", "pegasus")
        run("history", items[0].id[:8])
        run("quarantine")
    finally:
        os.umask(old)
    found = [*walk(vault_dir), *walk(usb / "ack.bundle"), *walk(usb / "outbox.bundle")]
    kept = {p.parent.name for p, st in found if stat.S_ISREG(st.st_mode)}
    assert {"files", "quarantine", "outbox", "acks", "keys", "vault", "usb"} <= kept
    # Control: the canary is in the vault, readable with the passphrase only.
    v = unlock(vault_dir, PASSPHRASE)
    try:
        shown = show_item(v, items[0].id)
        assert isinstance(shown, Report)
        assert shown.answers.description == canary
    finally:
        v.close()
