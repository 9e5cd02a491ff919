"""Issue 13, item 7: a transfer machine cannot hide reports from its desk.

Everything real: the demo intake server as a process (tests/support/server_process.py,
its keyring replaced by desks made as desks make theirs, so that a vault can hold their
keys), `journalist-transfer fetch` with its cursor.json edited by hand, and
`journalist-client import` / `list`. The server's signed export states which items it
holds for the desk, unacknowledged, before the cursor it was asked for; the vault
raises the alarm while any of them never reached it. Retention deleting an item the
desk never received is said in the next export, and the client shows it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from intake_server.install import init_demo
from keys.identity import generate_desk
from keys.keyring import Keyring
from support.server_process import ServerProcess, free_port

BIN = Path(sys.executable).parent
PASSPHRASE = "correct horse battery staple for the demo desk"  # noqa: S105 - test desk


def run(*argv: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                            cwd=cwd, timeout=120, check=False,
                            env=dict(os.environ, AMANA_VAULT=""))
    if ok:
        assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result


class Desk:
    """The triage desk's two machines: the transfer directory and the offline vault."""

    def __init__(self, root: Path, server: ServerProcess) -> None:
        self.root = root
        self.server = server
        self.transfer = root / "transfer"
        self.usb = root / "usb"
        self.staff_url = f"http://127.0.0.1:{server.staff_port}"
        self.said = ""
        config = server.demo_dir / "intake-server.toml"
        server_key = (server.demo_dir / "server-verify.key").read_text().split()[-1]
        keyring = str(server.demo_dir / "keyring.json")
        printed = run("journalist-transfer", "init", "--dir", str(self.transfer), "--desk",
                      "triage", "--server-key", server_key, "--keyring", keyring,
                      cwd=root).stdout
        key = re.search(r"ed25519:[A-Za-z0-9_-]{43}", printed).group(0)
        run("intake-server", "desk", "add-transfer-key", "--config", str(config),
            "--desk", "triage", key, cwd=root)
        self.vault = ["journalist-client", "--vault", str(root / "vault"),
                      "--passphrase-file", str(root / "pw")]
        run(*self.vault, "init", "--import-keys", str(root / "desks" / "triage"),
            "--keyring", keyring, "--server-key", server_key, cwd=root)

    def fetch(self) -> list[Path]:
        """Fetch into a fresh directory; the bundles it kept."""
        out = self.usb / str(len(list(self.usb.glob("*"))) if self.usb.exists() else 0)
        self.said = run("journalist-transfer", "fetch", "--dir", str(self.transfer),
                        "--server", self.staff_url, "--out", str(out), cwd=self.root).stdout
        return sorted(out.glob("export-*.bundle"))

    @property
    def cursor(self) -> str:
        return json.loads((self.transfer / "cursor.json").read_text())["after"]

    def set_cursor(self, value: str) -> None:
        (self.transfer / "cursor.json").write_text(json.dumps({"after": value}))

    def import_(self, bundles: list[Path], ok: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.vault, "import", "--no-progress", *map(str, bundles),
                   cwd=self.root, ok=ok)

    def list(self) -> str:
        result = run(*self.vault, "list", cwd=self.root)
        return result.stdout + result.stderr


@pytest.fixture
def site(tmp_path: Path):
    # The demo install, made first so that its keyring can hold desks with real desk
    # keys (the demo writes bare identities a vault cannot import); `demo` then serves it.
    port = free_port()
    init_demo(tmp_path / "demo", port=port)
    (tmp_path / "desks").mkdir()
    desks = [generate_desk(d, {"en": d, "ar": d, "fr": d}, tmp_path / "desks" / d,
                           PASSPHRASE, work_factor=10) for d in ("triage", "forensics")]
    (tmp_path / "demo" / "keyring.json").write_bytes(Keyring(desks).to_json())
    (tmp_path / "pw").write_text(PASSPHRASE + "\n")
    server = ServerProcess(tmp_path, port)
    server.start()
    try:
        yield server, Desk(tmp_path, server)
    finally:
        server.stop()


async def _submit(server: ServerProcess, text: str) -> None:
    async with server.session() as http:
        csrf = await server.csrf(http)
        form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        for name, value in (("csrf", csrf), ("category", "spyware"), ("desks", "triage"),
                            ("description", text)):
            form.add_field(name, value)
        async with http.post("/en/submit", data=form) as resp:
            assert resp.status == 200, await resp.text()


def submit(server: ServerProcess, text: str) -> None:
    asyncio.run(_submit(server, text))


def test_a_cursor_edited_to_skip_reports_raises_the_alarm(site) -> None:
    server, desk = site
    submit(server, "first report")
    (first,) = desk.fetch()
    desk.import_([first])
    honest = desk.cursor
    # Two reports arrive; the transfer machine's cursor is pushed past them by hand.
    submit(server, "second report")
    submit(server, "third report")
    desk.set_cursor("999999999")
    (statement,) = desk.fetch()  # nothing new after that cursor: the server says so, signed
    assert desk.said.startswith("Nothing new for desk triage, but the server lists items")
    result = desk.import_([statement], ok=False)
    assert result.returncode == 1
    assert "2 item(s)" in result.stderr
    assert "tampered" in result.stderr
    assert "2 item(s)" in desk.list()

    # A cursor that skips exactly those two still brings what came later, and the alarm.
    assert desk.cursor == "999999999"  # fetch never moves a cursor backwards
    desk.set_cursor(str(int(honest) + 2))
    submit(server, "fourth report")
    (fourth,) = desk.fetch()
    result = desk.import_([fourth], ok=False)
    assert result.returncode == 1
    assert "2 item(s)" in result.stderr

    # Fetching honestly again brings them; the alarm goes.
    desk.set_cursor(honest)
    (everything,) = desk.fetch()
    result = desk.import_([everything])
    assert "missing" not in result.stdout + result.stderr
    listing = desk.list()
    assert "missing" not in listing
    assert listing.count("\n") >= 5  # the header and four reports


def test_retention_of_a_report_never_exported_is_said_in_the_next_bundle(site) -> None:
    server, desk = site
    submit(server, "a report nobody fetches in time")
    # The report ages past the retention period while the server is down; at its next
    # start retention deletes it, never having shown it to the desk.
    server.stop()
    db = server.demo_dir / "data" / "intake.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE submissions SET day = '2001-01-01'")
    conn.close()
    server.start()
    deadline = time.monotonic() + 20
    while list(server.store_dir.iterdir()):
        assert time.monotonic() < deadline, "retention did not run"
        time.sleep(0.1)

    (statement,) = desk.fetch()
    result = desk.import_([statement])
    said = result.stdout + result.stderr
    assert "1 item(s)" in said
    assert "retention" in said
    assert "2001-01-01" in said
    assert "retention" in desk.list()
