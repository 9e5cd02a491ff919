"""Nothing acknowledged becomes unreachable (issue 13, item 4).

The ack lists quarantined items too, and the server then deletes its copy: the vault's
quarantine/ is the only one left. A quarantined item is hidden from list and search,
so it must be reachable another way: ``quarantine show ID`` says what was kept and why
(never the content), ``quarantine export ID --out FILE`` writes a kept file decrypted
(or, with ``--ciphertext``, as kept) to a new 0600 file, without ever showing it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from journalist_client.vault import Vault
from keys.age import X25519Identity

from .conftest import HOSTILE, Run, Server, attachment_meta, report_doc


def _quarantine_one(run: Run, server: Server) -> tuple[str, bytes, bytes]:
    """A report the client refuses: the TAB media type the server used to keep, and a
    hostile description that must never reach the terminal."""
    data = b"attachment bytes \x00\xff" * 500
    doc = report_doc(description=HOSTILE)
    doc["attachments"] = [{**attachment_meta(data), "media_type": "image/png\tjunk"}]
    it = server.item(doc, [data])
    code, out, err = run("import", str(server.bundle([it])))
    assert code == 1  # nothing could be imported: it is all in quarantine
    assert "1 quarantined" in out
    return it.id, it.doc_bytes, data


def test_a_quarantined_item_is_shown_without_its_content(run: Run, server: Server) -> None:
    item, _, data = _quarantine_one(run, server)
    assert item not in run("list", "--json")[1]
    code, out, err = run("quarantine", "show", item[:8])
    assert code == 0, err
    assert item in out
    assert "media_type" in out
    assert "opens with this desk's key" in out
    assert "\x1b" not in out
    assert HOSTILE not in out
    assert "suspicious" not in out  # nothing of the document is shown
    shown = json.loads(run("quarantine", "show", item[:8], "--json")[1])
    assert shown["item_id"] == item
    assert [f["n"] for f in shown["files"]] == [0, 1]
    assert all(f["opens"] and f["problem"] == "" for f in shown["files"])
    assert shown["files"][1]["size"] > len(data)  # ciphertext: header and tags added


def test_export_writes_the_decrypted_bytes_to_a_new_private_file(
        run: Run, server: Server, tmp_path: Path) -> None:
    item, doc_bytes, data = _quarantine_one(run, server)
    old = os.umask(0o022)
    try:
        code, out, err = run("quarantine", "export", item[:8], "--out", str(tmp_path / "d"))
        assert code == 0, err
        assert run("quarantine", "export", item[:8], "--file", "1",
                   "--out", str(tmp_path / "a"))[0] == 0
    finally:
        os.umask(old)
    assert (tmp_path / "d").read_bytes() == doc_bytes
    assert (tmp_path / "a").read_bytes() == data
    for name in ("d", "a"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert HOSTILE not in out
    assert "hostile" in err
    # Never replaces a file; a number that is not there is refused.
    code, _, err = run("quarantine", "export", item[:8], "--out", str(tmp_path / "d"))
    assert code == 1
    assert "already exists" in err
    assert run("quarantine", "export", item[:8], "--file", "2",
               "--out", str(tmp_path / "x"))[0] == 1
    assert not (tmp_path / "x").exists()


def test_a_file_this_desk_cannot_decrypt_is_exported_as_kept(
        run: Run, server: Server, desk_vault: Vault, tmp_path: Path) -> None:
    it = server.item(report_doc())
    it.recipients = [X25519Identity.generate().recipient()]  # not to this desk
    assert run("import", str(server.bundle([it])))[0] == 1  # all quarantined
    shown = json.loads(run("quarantine", "show", it.id, "--json")[1])
    assert not shown["files"][0]["opens"]
    assert "not encrypted to this desk" in shown["files"][0]["problem"]
    code, _, err = run("quarantine", "export", it.id, "--out", str(tmp_path / "p"))
    assert code == 1
    assert "--ciphertext" in err
    assert not (tmp_path / "p").exists()
    code, _, err = run("quarantine", "export", it.id, "--ciphertext",
                       "--out", str(tmp_path / "c"))
    assert code == 0, err
    kept = desk_vault.path / "quarantine" / shown["files"][0]["file"]
    assert (tmp_path / "c").read_bytes() == kept.read_bytes()
    assert (tmp_path / "c").read_bytes().startswith(b"age-encryption.org/v1\n")


def test_unknown_ids_and_misused_options_are_refused(run: Run, server: Server,
                                                     tmp_path: Path) -> None:
    item, _, _ = _quarantine_one(run, server)
    assert run("quarantine", "show", "ffffffff")[0] == 1
    assert run("quarantine", "show", "../x")[0] == 1
    assert run("quarantine", "show")[0] == 1
    assert run("quarantine", "export", item[:8])[0] == 1  # no --out
    assert run("quarantine", "--out", str(tmp_path / "o"))[0] == 1
    assert run("quarantine", "export", item[:8], "--out", str(tmp_path / "o"),
               "--json")[0] == 1
    assert list(tmp_path.glob("o*")) == []
