"""The triage commands end to end, through journalist_client.cli.main."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from journalist_client.cli import main
from journalist_client.vault import Vault, unlock
from keys.age import decrypt
from keys.bundle import open_bundle

from .conftest import PASSPHRASE, Desks, Run, Server, attachment_meta, report_doc


def test_list_and_filters(run: Run, imported: dict[str, str]) -> None:
    code, out, _ = run("list")
    assert code == 0
    assert sum(imported[k][:12] in out for k in "abc") == 3
    assert imported["f"][:12] not in out
    assert imported["f"][:12] in run("list", "--followups")[1]
    out = run("list", "--country", "LB")[1]
    assert imported["b"][:12] in out
    assert imported["a"][:12] not in out
    assert imported["b"][:12] in run("list", "--desk", "lawyers")[1]
    assert imported["a"][:12] not in run("list", "--desk", "lawyers")[1]
    assert imported["a"][:12] in run("list", "--category", "spyware")[1]
    assert "No reports match." in run("list", "--since", "2027-01-01")[1]
    assert imported["a"][:12] in run("list", "--indicator", "EXAMPLE.invalid")[1]


def test_set_note_and_history(run: Run, imported: dict[str, str]) -> None:
    a = imported["a"][:8]
    code, out, _ = run("--as", "yusuf", "set", a, "--status", "triaged", "--severity", "S2",
                       "--category", "spyware.exploit_link", "--assign", "rania",
                       "--tag", "pegasus", "--tag", "uae")
    assert code == 0
    assert "status: new → triaged" in out
    assert run("set", a, "--severity", "S2")[1].strip() == "Nothing changed."
    assert run("note", a, "called", "back;", "device", "seized")[0] == 0
    assert imported["a"][:12] in run("list", "--tag", "pegasus", "--severity", "S2")[1]
    assert imported["a"][:12] in run("list", "--category", "spyware.exploit_link")[1]
    out = run("history", a)[1]
    assert "yusuf: status new → triaged" in out
    assert "severity - → S2" in out
    assert "note - → called back; device seized" in out
    code, _, err = run("set", a, "--category", "spyware.nonsense")
    assert code == 1
    assert "unknown category" in err
    assert run("set", imported["f"][:8], "--status", "closed")[0] == 1  # follow-ups: no triage
    assert "hex characters" in run("show", "zz")[2]


def test_show_is_inert_and_complete(run: Run, imported: dict[str, str]) -> None:
    code, out, _ = run("show", imported["c"], "--history")
    assert code == 0
    for bad in ("\x1b", "\x07", "\u202e", "\r", "\x9b"):
        assert bad not in out
    assert "\\x1b]0;owned\\x07\\x1b[2J<script>alert(1)</script>\\u202eexe.pdf\\x0d\\x9b1m" in out
    out = run("show", imported["a"])[1]
    assert "رسالة مشبوهة" in out
    assert "1. ../../.bashrc" in out  # shown, never used as a path
    assert "sha256 " in out
    assert "more: they called me again" in out  # the follow-up, threaded by reply recipient
    assert imported["a"] in run("show", imported["f"])[1]


def test_search_with_snippets(run: Run, imported: dict[str, str]) -> None:
    out = run("search", "الامارات")[1]
    assert imported["a"][:12] in out
    assert "[الإمارات]" in out
    out = run("search", "gmail")[1]
    assert imported["b"][:12] in out
    assert "[Gmail]" in out
    run("note", imported["b"][:8], "Referred to the Beirut lawyers")
    assert imported["b"][:12] in run("search", "beirut")[1]
    assert "No matches." in run("search", "nothinglikethis")[1]
    assert run("search", "owned")[1].count("\x1b") == 0


def test_export_attachment(run: Run, imported: dict[str, str], tmp_path: Path) -> None:
    out_path = tmp_path / "evidence.bin"
    code, out, err = run("export-attachment", imported["a"][:8], "1", "--out", str(out_path))
    assert code == 0, err
    assert out_path.read_bytes() == bytes.fromhex(imported["data"])
    assert (out_path.stat().st_mode & 0o777) == 0o600
    assert "Dangerzone" in err
    assert "offline" in err
    # Never overwrite; never use the source's name; no other file appears.
    code, _, err = run("export-attachment", imported["a"][:8], "1", "--out", str(out_path))
    assert code == 1
    assert "already exists" in err
    assert not (tmp_path / ".bashrc").exists()
    assert run("export-attachment", imported["a"][:8], "2", "--out", str(tmp_path / "x"))[0] == 1


def test_export_refuses_a_file_that_does_not_match_its_hash(
        run: Run, server: Server, tmp_path: Path) -> None:
    doc = report_doc()
    doc["attachments"] = [attachment_meta(b"what the report claims")]
    it = server.item(doc, [b"something else entirely"])
    assert run("import", str(server.bundle([it])))[0] == 0
    code, _, err = run("export-attachment", it.id[:8], "1", "--out", str(tmp_path / "o"))
    assert code == 1
    assert "does not match the size and SHA-256" in err
    assert not (tmp_path / "o").exists()
    assert not list(tmp_path.glob(".o.*"))


def test_export_refuses_a_damaged_payload(run: Run, server: Server, tmp_path: Path) -> None:
    data = b"z" * 200_000
    doc = report_doc()
    doc["attachments"] = [attachment_meta(data)]
    it = server.item(doc, [data])
    it.mangle[1] = lambda ct: ct[:-100]
    assert run("import", str(server.bundle([it])))[0] == 0
    code, _, err = run("export-attachment", it.id[:8], "1", "--out", str(tmp_path / "o"))
    assert code == 1
    assert "payload" in err
    assert not (tmp_path / "o").exists()


def test_reply_refer_and_outbox_bundle(run: Run, imported: dict[str, str], desks: Desks,
                                       desk_vault: Vault, tmp_path: Path,
                                       server: Server) -> None:
    a = imported["a"]
    reply_file = tmp_path / "reply.txt"
    reply_file.write_text("شكراً، سنتواصل معك قريباً")
    assert run("reply", a[:8], "--file", str(reply_file))[0] == 0
    assert run("reply", a[:8], stdin="second reply from stdin")[0] == 0
    code, _, err = run("reply", a[:8], stdin="   \n")
    assert code == 1
    assert "empty" in err
    code, out, err = run("refer", a[:8], "--to", "lawyers", "--note", "needs a lawyer")
    assert code == 0, err
    assert "status new → referred" in run("history", a[:8])[1]
    assert run("refer", a[:8], "--to", "nobody", "--note", "x")[0] == 1
    out = run("outbox")[1]
    assert out.count("reply") == 2
    assert "desk lawyers" in out
    assert "thread" in run("show", a)[1].lower()

    bundle_path = tmp_path / "outbox.bundle"
    code, out, err = run("outbox", "bundle", "--out", str(bundle_path))
    assert code == 0, err
    assert "The outbox is empty." in run("outbox")[1]
    # --all lists what went into a bundle, without claiming it was pushed: push runs on
    # another machine.
    listed = run("outbox", "--all")[1]
    assert listed.count("(in outbox bundle ") == 3  # two replies and the referral
    assert "sent" not in listed
    assert run("outbox", "bundle", "--out", str(tmp_path / "again"))[0] == 1

    b = open_bundle(bundle_path, {"triage": desk_vault.keys.signing_key.verify_key},
                    kind="outbox")
    index = json.loads(b.read("outbox.json"))
    assert index["format"] == "amana-outbox"
    assert index["desk"] == "triage"
    kinds = [i["type"] for i in index["items"]]
    assert sorted(kinds) == ["referral", "reply", "reply"]
    fresh = unlock(desk_vault.path, PASSPHRASE)
    source_doc = json.loads(fresh.conn.execute(
        "SELECT doc FROM items WHERE id = ?", (a,)).fetchone()[0])
    for item in index["items"]:
        if item["type"] == "reply":
            assert item["to"] == source_doc["reply_recipient"]
            # The desk can read its own reply (it is a recipient too).
            doc = json.loads(decrypt(b.read(item["file"]), [desk_vault.keys.identity]))
            assert doc["format"] == "amana-reply"
            assert doc["desk"] == "triage"
        else:
            assert item["to_desk"] == "lawyers"
            doc_ct, att_ct = (b.read(n) for n in item["files"])
            referred = json.loads(decrypt(doc_ct, [desks.lawyers.identity]))
            assert referred["referral"]["note"] == "needs a lawyer"
            assert referred["answers"] == source_doc["answers"]
            att = decrypt(att_ct, [desks.lawyers.identity])
            assert hashlib.sha256(att).hexdigest() == source_doc["attachments"][0]["sha256"]


def test_quarantine_listing(run: Run, server: Server) -> None:
    it = server.item(b"{not json")
    code, out, err = run("import", str(server.bundle([it])))
    # Quarantined (and acknowledged: it is safe in quarantine/), but nothing imported is
    # not a success.
    assert code == 1
    assert "1 quarantined" in out
    assert "nothing could be imported: all 1 item(s) were quarantined" in err
    assert "not valid JSON" in run("quarantine")[1]
    # One good item beside a quarantined one is a success.
    code, out, _ = run("import", str(server.bundle([server.item(report_doc()),
                                                   server.item(b"{not json either")])))
    assert code == 0
    assert "1 imported, 0 already here, 1 quarantined" in out


def test_bad_bundle_exit_code(run: Run, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"nothing")
    code, _, err = run("import", str(junk))
    assert code == 1
    assert "Nothing was imported" in err


def test_trust_server_and_wrong_passphrase(run: Run, vault_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run("trust-server", "ed25519:nope")[0] == 1
    bad = tmp_path / "bad"
    bad.write_text("wrong wrong wrong\n")
    assert main(["--vault", str(vault_dir), "--passphrase-file", str(bad), "list"]) == 1
    assert "wrong passphrase" in capsys.readouterr().err


def test_init_from_the_cli(tmp_path: Path, passfile: Path, fast_scrypt: None,
                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--vault", str(tmp_path / "new"), "--passphrase-file", str(passfile),
                 "init", "--desk", "smex"])
    out = capsys.readouterr().out
    assert code == 0
    assert "fingerprint" in out
    assert "trust-server" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reply_from_the_editor(run: Run, imported: dict[str, str], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    seen = tmp_path / "draft-path"
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys, pathlib\n"
        f"pathlib.Path({str(seen)!r}).write_text(sys.argv[1])\n"
        "pathlib.Path(sys.argv[1]).write_text('written in the editor')\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    code, out, err = run("reply", imported["a"][:8])
    assert code == 0, err
    draft = Path(seen.read_text())
    assert not draft.exists()  # erased and removed
    if Path("/dev/shm").is_dir():
        assert draft.parent.parent == Path("/dev/shm")  # in a private directory there
        assert not draft.parent.exists()
    assert "written in the editor" in run("show", imported["a"])[1]


def test_options_after_the_command(tmp_path: Path, passfile: Path, fast_scrypt: None,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    vault_dir = str(tmp_path / "v2")
    assert main(["init", "--vault", vault_dir, "--desk", "smex",
                 "--passphrase-file", str(passfile)]) == 0
    assert main(["list", "--vault", vault_dir, "--passphrase-file", str(passfile)]) == 0
    assert "No reports match." in capsys.readouterr().out


def test_trust_server_replaces_the_key(run: Run, server: Server) -> None:
    from keys.signing import SigningKey

    old_bundle = server.bundle([server.item(report_doc())])
    server.key = SigningKey.generate()
    code, out, _ = run("trust-server", str(server.key.verify_key))
    assert code == 0
    assert "now trusted" in out
    code, _, err = run("import", str(old_bundle))
    assert code == 1
    assert "not trusted" in err
    assert run("import", str(server.bundle([server.item(report_doc())])))[0] == 0


def test_refer_with_a_damaged_attachment_queues_nothing(run: Run, server: Server,
                                                        vault_dir: Path) -> None:
    data = b"q" * 100_000
    doc = report_doc()
    doc["attachments"] = [attachment_meta(data)]
    it = server.item(doc, [data])
    it.mangle[1] = lambda ct: ct[:-50]
    assert run("import", str(server.bundle([it])))[0] == 0
    code, _, err = run("refer", it.id[:8], "--to", "lawyers", "--note", "n")
    assert code == 1
    assert "nothing was queued" in err
    assert "The outbox is empty." in run("outbox")[1]
    assert not list((vault_dir / "outbox").iterdir())
    assert "status: new" in run("show", it.id)[1]


def _at_a_terminal(argv: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run the real journalist-client with a pseudo-terminal as its controlling terminal
    (getpass reads /dev/tty), answering each passphrase prompt in turn."""
    import fcntl
    import os
    import pty
    import select
    import subprocess
    import sys
    import termios
    import time

    main_fd, tty_fd = pty.openpty()

    def own_the_tty() -> None:  # runs in the child, after setsid (start_new_session)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "journalist_client.cli", *argv],
                            stdin=tty_fd, stdout=tty_fd, stderr=tty_fd,
                            start_new_session=True, preexec_fn=own_the_tty)
    os.close(tty_fd)
    seen = b""
    deadline = time.monotonic() + timeout
    pending = list(answers)
    while time.monotonic() < deadline:
        # Never block past the deadline: a prompt nobody answers must fail the test, not
        # hang it.
        ready, _, _ = select.select([main_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if pending and seen.rstrip().endswith(b"passphrase:"):
            os.write(main_fd, pending.pop(0).encode() + b"\n")
            seen += b"<answered>"
    os.close(main_fd)
    if proc.poll() is None:  # still waiting for an answer that will not come
        proc.kill()
    return proc.wait(timeout=timeout), seen.decode("utf-8", "replace")


def test_a_wrong_passphrase_at_a_terminal_gets_two_more_tries(vault_dir: Path,
                                                               desk_vault: Vault) -> None:
    desk_vault.close()
    code, screen = _at_a_terminal(["--vault", str(vault_dir), "list"],
                                  ["not it at all", "still not it", PASSPHRASE])
    assert code == 0, screen
    assert screen.count("Wrong passphrase, try again.") == 2
    assert "identity.age" not in screen
    code, screen = _at_a_terminal(["--vault", str(vault_dir), "list"], ["no"] * 3)
    assert code == 1
    assert screen.count("Vault passphrase:") == 3
    assert "wrong passphrase for this vault" in screen
    assert "identity.age" not in screen


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_failed_init_leaves_nothing_and_the_retry_works(
        tmp_path: Path, passfile: Path, desks: Desks, fast_scrypt: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    parent = tmp_path / "vaults"
    parent.mkdir()
    target = parent / "smex"
    short = tmp_path / "short.txt"
    short.write_text("too short\n")
    base = ["--vault", str(target), "--passphrase-file"]
    # A short passphrase for new keys.
    assert main([*base, str(short), "init", "--desk", "smex"]) == 1
    assert "too short" in capsys.readouterr().err
    # A keyring that lists this desk with other keys: refused after the keys were made.
    assert main([*base, str(passfile), "init", "--desk", "lawyers",
                 "--keyring", str(desks.keyring_path)]) == 1
    assert "other keys" in capsys.readouterr().err
    assert not target.exists()
    assert _leftovers(parent) == []  # no staging directory, no copy of any key
    # The retry is not told that the directory "exists and is not empty".
    assert main([*base, str(passfile), "init", "--desk", "smex"]) == 0
    assert (target / "vault.json").is_file()
    assert _leftovers(parent) == []


def test_init_says_a_passphrase_is_short_before_asking_it_again(tmp_path: Path) -> None:
    code, screen = _at_a_terminal(["--vault", str(tmp_path / "v"), "init", "--desk", "smex"],
                                  ["short"], timeout=20)
    assert code == 1
    assert "too short" in screen
    assert "Same passphrase again" not in screen
    assert not (tmp_path / "v").exists()


def test_list_and_search_say_when_they_show_only_part(run: Run, server: Server) -> None:
    items = [server.item(report_doc(description=f"hacked phone number {n}"))
             for n in range(5)]
    assert run("import", str(server.bundle(items)))[0] == 0
    code, out, err = run("list", "--limit", "3")
    assert code == 0
    assert len([line for line in out.splitlines()[1:] if line.strip()]) == 3
    assert "showing 3 of 5: use --limit N to see more" in err
    code, out, err = run("search", "hacked", "--limit", "2")
    assert "showing 2 of 5" in err
    # --json stays one document on stdout; the note is on stderr.
    code, out, err = run("list", "--limit", "3", "--json")
    assert len(json.loads(out)) == 3
    assert "showing 3 of 5" in err
    # Nothing is said when everything is shown.
    assert "showing" not in run("list")[2]
    assert "showing" not in run("search", "hacked", "--limit", "5")[2]
