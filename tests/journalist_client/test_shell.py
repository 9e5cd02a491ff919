"""`journalist-client shell`: the real program, fed commands on a pipe or a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from journalist_client import triage, vault_journal
from journalist_client.importer import import_bundle
from journalist_client.vault import Vault, unlock

from .conftest import PASSPHRASE, Server, report_doc

CLIENT = [sys.executable, "-m", "journalist_client.cli"]


@pytest.fixture
def ids(desk_vault: Vault, server: Server) -> list[str]:
    its = [server.item(report_doc(description="هاتفي مخترق pegasus", country="MA")),
           server.item(report_doc(description="Mon téléphone est surveillé"))]
    import_bundle(desk_vault, server.bundle(its), progress=False)
    desk_vault.close()
    return [it.id for it in its]


def shell(vault_dir: Path, passfile: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLIENT, "--vault", str(vault_dir), "--passphrase-file", str(passfile), "shell",
         *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_commands_in_one_session_are_saved(ids: list[str], vault_dir: Path,
                                           passfile: Path) -> None:
    script = "\n".join([
        "list --json",
        f"set {ids[0][:10]} --status triaged --severity S2 --tag pegasus",
        f"note {ids[0][:10]} 'called back, device seized'",
        "search هاتف",
        f"show {ids[0][:10]} --json",
        "exit",
    ]) + "\n"
    proc = shell(vault_dir, passfile, "--timing")
    out, err = proc.communicate(script, timeout=120)
    assert proc.returncode == 0, err
    listed = json.loads(out[: out.index("\n]") + 2])
    assert {i["id"] for i in listed} == set(ids)
    assert "status: new → triaged" in out
    shown = json.loads(out[out.rindex("\n{") + 1:])
    assert shown["status"] == "triaged"
    assert [n["text"] for n in shown["notes"]] == ["called back, device seized"]
    # --timing: one line per command on stderr.
    assert err.count(" ms]") == 5
    # Locked and compacted on exit: the next command opens it, and the journal is gone.
    assert not (vault_dir / vault_journal.JOURNAL_FILE).exists()
    v = unlock(vault_dir, PASSPHRASE)
    assert triage.show_item(v, ids[0]).severity == "S2"
    v.close()


def test_a_failed_command_does_not_end_the_session(ids: list[str], vault_dir: Path,
                                                   passfile: Path) -> None:
    script = "\n".join([
        "show nosuchid",
        "set --status bogus",
        "init --desk x",
        "'unclosed",
        f"set {ids[1][:10]} --status closed",
        "show nosuchid",
    ]) + "\n"
    proc = shell(vault_dir, passfile)
    out, err = proc.communicate(script, timeout=120)
    # The last command failed: a script of commands can tell.
    assert proc.returncode == 1
    assert "not available inside the shell" in err
    assert "invalid choice: 'bogus'" in err
    assert "No closing quotation" in err
    assert "status: new → closed" in out
    v = unlock(vault_dir, PASSPHRASE)
    assert triage.show_item(v, ids[1]).status == "closed"
    v.close()


def test_the_shell_holds_the_vault_lock(ids: list[str], vault_dir: Path,
                                        passfile: Path) -> None:
    proc = shell(vault_dir, passfile)
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("list\n")
    proc.stdin.flush()
    assert proc.stdout.readline()  # unlocked and answering
    other = subprocess.run([*CLIENT, "--vault", str(vault_dir), "--passphrase-file",
                            str(passfile), "list"], capture_output=True, text=True,
                           timeout=60, check=False)
    assert other.returncode == 1
    assert "another journalist-client is using this vault" in other.stderr
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0


def test_kill_9_keeps_what_was_answered(ids: list[str], vault_dir: Path,
                                        passfile: Path) -> None:
    proc = shell(vault_dir, passfile)
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(f"set {ids[0][:10]} --status triaged\n")
    proc.stdin.flush()
    assert "status: new → triaged" in proc.stdout.readline()
    proc.kill()
    proc.wait()
    run = subprocess.run([*CLIENT, "--vault", str(vault_dir), "--passphrase-file",
                          str(passfile), "show", ids[0][:10], "--json"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["status"] == "triaged"
    assert "recovered from its journal" in run.stderr


def test_sigterm_locks_and_compacts(ids: list[str], vault_dir: Path, passfile: Path) -> None:
    proc = shell(vault_dir, passfile)
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(f"set {ids[0][:10]} --assign rania\n")
    proc.stdin.flush()
    assert "assignee" in proc.stdout.readline()
    assert (vault_dir / vault_journal.JOURNAL_FILE).exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not (vault_dir / vault_journal.JOURNAL_FILE).exists()
    v = unlock(vault_dir, PASSPHRASE)
    assert v.notice is None
    assert triage.show_item(v, ids[0]).assignee == "rania"
    v.close()


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} never came; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_at_a_terminal_it_locks_when_idle_and_keeps_no_history_file(
        ids: list[str], vault_dir: Path, passfile: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real shell on a terminal
        os.environ["HOME"] = str(home)
        argv = [*CLIENT, "--vault", str(vault_dir), "--passphrase-file", str(passfile),
                "shell", "--idle-minutes", "0.05"]
        os.execv(sys.executable, argv)  # noqa: S606 - the program under test, fixed argv
    try:
        _read_until(fd, b"triage> ", 60)
        os.write(fd, f"set {ids[0][:10]} --tag idle-test\r".encode())
        _read_until(fd, b"triage> ", 60)
        # Nothing typed for 3 seconds: locked and gone.
        out = _read_until(fd, b"Locked after 0.05 minutes", 30)
        assert b"Locked" in out
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
    assert list(home.iterdir()) == []  # no history file, nothing else
    v = unlock(vault_dir, PASSPHRASE)
    assert "idle-test" in triage.show_item(v, ids[0]).tags
    v.close()
