"""The offline guarantee and the dependency line.

The triage commands run with every socket constructor patched to raise, and pass. The
offline modules import nothing that talks to a network (aiohttp lives only in
journalist_client/online/, the transfer machine's journalist-transfer), and nothing of
intake_server: the client parses what the server wrote as hostile input, with its own
code.
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from journalist_client.cli import main
from journalist_client.vault import Vault

from .conftest import Server, attachment_meta, report_doc

PACKAGE = Path(__file__).resolve().parents[2] / "journalist_client"
ONLINE = PACKAGE / "online"
# The local UI (journalist-client ui) is an aiohttp server bound to 127.0.0.1 only, and
# is loaded by that command alone (test_the_cli_does_not_load_aiohttp); it connects to
# nothing (tests/journalist_client/ui_tests: Chromium sees no request but to itself).
UI = PACKAGE / "ui"
OFFLINE = sorted(p for p in PACKAGE.rglob("*.py")
                 if ONLINE not in p.parents and UI not in p.parents)
NETWORK = {"aiohttp", "socket", "urllib", "http", "requests", "ssl", "asyncio", "smtplib",
           "ftplib", "aiohttp_socks", "websockets"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_client_never_imports_intake_server(path: Path) -> None:
    assert "intake_server" not in _imports(path)


@pytest.mark.parametrize("path", OFFLINE, ids=lambda p: p.name)
def test_offline_modules_import_no_network_library(path: Path) -> None:
    assert not (_imports(path) & NETWORK)


def test_the_cli_does_not_load_aiohttp() -> None:
    code = ("import sys, journalist_client.cli; "
            "bad = [m for m in ('aiohttp', 'intake_server', 'journalist_client.online') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


class _NoNetwork(Exception):
    pass


def _refuse(*args: object, **kwargs: object) -> None:
    raise _NoNetwork("a triage command tried to open a socket")


def test_every_triage_command_runs_with_sockets_disabled(
        monkeypatch: pytest.MonkeyPatch, server: Server, vault_dir: Path, passfile: Path,
        tmp_path: Path, desk_vault: Vault, capsys: pytest.CaptureFixture[str]) -> None:
    desk_vault.close()
    data = b"evidence"
    doc = report_doc(description="برنامج تجسس")
    doc["attachments"] = [attachment_meta(data)]
    it = server.item(doc, [data])
    bundle = server.bundle([it])
    for name in ("socket", "create_connection", "socketpair", "fromfd", "getaddrinfo"):
        monkeypatch.setattr(socket, name, _refuse)
    reply = tmp_path / "r.txt"
    reply.write_text("reply")
    i = it.id[:8]
    commands = [
        ["import", str(bundle)], ["list"], ["list", "--status", "new"], ["show", i],
        ["set", i, "--status", "triaged", "--severity", "S3", "--tag", "t"],
        ["note", i, "a note"], ["history", i], ["search", "تجسس"],
        ["export-attachment", i, "1", "--out", str(tmp_path / "e.bin")],
        ["reply", i, "--file", str(reply)], ["refer", i, "--to", "lawyers", "--note", "n"],
        ["outbox"], ["outbox", "bundle", "--out", str(tmp_path / "o.bundle")],
        ["quarantine"],
    ]
    for args in commands:
        code = main(["--vault", str(vault_dir), "--passphrase-file", str(passfile), *args])
        assert code == 0, (args, capsys.readouterr().err)
    assert (tmp_path / "e.bin").read_bytes() == data
    with pytest.raises(_NoNetwork):
        socket.socket()


def test_the_cli_refuses_core_dumps() -> None:
    # main() hardens the process first thing (keys.process; the dumpable flag is
    # tested in tests/test_process_hygiene.py); `list` without a vault then fails.
    code = ("import resource, journalist_client.cli as c; c.main(['list']); "
            "print(resource.getrlimit(resource.RLIMIT_CORE))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "(0, 0)"
