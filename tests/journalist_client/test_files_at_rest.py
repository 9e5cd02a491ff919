"""Files at rest on the triage machine (issue 13, item 9).

Whatever the umask, every file journalist-client leaves is 0600 and every directory
0700, and none keeps a time finer than the UTC day: after init, import (with a
quarantined item), reply, referral and an outbox bundle, the whole vault is walked and
so are the ack and outbox bundles written outside it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from journalist_client.cli import main
from support.files_at_rest import assert_private_and_dated, walk

from .conftest import Desks, Server, attachment_meta, report_doc


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_used_vault_is_private_and_dated_to_the_day(
        tmp_path: Path, desks: Desks, server: Server, passfile: Path, fast_scrypt: None,
        umask: int, capsys: pytest.CaptureFixture[str]) -> None:
    vault_dir, usb = tmp_path / "vault", tmp_path / "usb"
    usb.mkdir()

    def run(*args: str) -> str:
        code = main(["--vault", str(vault_dir), "--passphrase-file", str(passfile), *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    data = b"evidence" * 1000
    good = report_doc()
    good["attachments"] = [attachment_meta(data)]
    items = [server.item(good, [data]), server.item(b"{not json")]
    reply = tmp_path / "reply.txt"
    reply.write_text("we read it")
    old = os.umask(umask)
    try:
        run("init", "--import-keys", str(desks.triage_dir), "--keyring",
            str(desks.keyring_path), "--server-key", str(server.key.verify_key))
        assert_private_and_dated(list(walk(vault_dir)))
        assert "1 quarantined" in run("import", str(server.bundle(items)))
        run("import", "--ack-out", str(usb / "ack.bundle"), str(server.bundle([])))
        run("reply", items[0].id[:8], "--file", str(reply))
        run("refer", items[0].id[:8], "--to", "lawyers", "--note", "n")
        run("outbox", "bundle", "--out", str(usb / "outbox.bundle"))
    finally:
        os.umask(old)
    found = [*walk(vault_dir), *walk(usb / "ack.bundle"), *walk(usb / "outbox.bundle")]
    assert_private_and_dated(found)
    kept = {p.parent.name for p, st in found if stat.S_ISREG(st.st_mode)}
    assert {"files", "quarantine", "outbox", "acks", "keys", "vault", "usb"} <= kept
