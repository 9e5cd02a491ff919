"""Files at rest on the transfer machine (issue 13, item 9; issue 18, what a seized
machine shows).

`journalist-transfer init`, `fetch` and `push` (an ack, then an outbox bundle), run as
real processes under a permissive umask against the real staff app: after each, every
file they leave, in the transfer directory and on the stick, is 0600, every directory
0700, no time is finer than the UTC day, the TMPDIR they ran with is empty, and the
report's canary (in any encoding) is nowhere: the machine only ever holds ciphertext.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from intake_server.staff import create_staff_app
from intake_server.staff.app import STAFF_STORE
from keys import fs
from keys.age import X25519Identity, encrypt
from keys.signing import VerifyKey
from support.canary import encodings
from support.files_at_rest import assert_private_and_dated, search, walk
from support.staff import Site, ack_bundle, make_site, outbox_bundle, submit


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
async def server(site: Site, aiohttp_server: Any) -> Any:
    app = create_staff_app(site.config, signing_key=site.server_key, storage=site.storage)
    return await aiohttp_server(app, host="127.0.0.1")


async def transfer(*args: str, tmp: Path) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "journalist_client.online.cli", *args],
        capture_output=True, text=True, umask=0o022, check=False,
        env=dict(os.environ, TMPDIR=str(tmp)))
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_fetched_bundles_and_the_transfer_directory_are_private_and_dated(
        site: Site, server: Any, tmp_path: Path) -> None:
    directory, usb, tmp = tmp_path / "transfer", tmp_path / "usb", tmp_path / "tmp"
    tmp.mkdir()
    canary = "CANARY-transfer-4e1f شاهد"
    needles = encodings(canary)

    def check(step: str) -> list[tuple[Path, Any]]:
        found = [*walk(directory), *(walk(usb) if usb.exists() else [])]
        try:
            assert_private_and_dated(found)
        except AssertionError as e:
            raise AssertionError(f"after {step}: {e}") from None
        assert list(tmp.iterdir()) == [], f"a temp file after {step}"
        assert search([directory, tmp, *([usb] if usb.exists() else [])], needles) == [], step
        return found

    out = await transfer("init", "--dir", str(directory), "--desk", "triage",
                         "--server-key", str(site.server_key.verify_key),
                         "--keyring", str(site.config.keyring), tmp=tmp)
    public = out.rsplit(" ", 1)[1].strip()
    server.app[STAFF_STORE].add_transfer_key("triage", VerifyKey.from_text(public))
    check("init")
    sid = await submit(site, ("triage",), canary.encode() * 50, (canary.encode() * 2000,))
    url = str(server.make_url("/")).rstrip("/")
    out = await transfer("fetch", "--dir", str(directory), "--server", url, "--out", str(usb),
                         tmp=tmp)
    assert "Verified bundle" in out
    found = check("fetch")
    assert {p.name for p, _ in found} >= {"cursor.json", "transfer.key", "transfer.json"}
    assert any(p.name.endswith(".bundle") for p, _ in found)

    # The desk's ack and outbox, carried back on the stick and pushed.
    fs.atomic_write_bytes(usb / "ack.bundle", ack_bundle(site, "triage", [sid]))
    out = await transfer("push", "--dir", str(directory), "--server", url,
                         str(usb / "ack.bundle"), tmp=tmp)
    fs.set_day_tree(usb, fs.today())  # the stick as the air-gapped client leaves it
    check("push of an ack")
    rid = "ab" * 16
    reply = encrypt(canary.encode(), [X25519Identity.generate().recipient()])
    fs.atomic_write_bytes(usb / "outbox.bundle", outbox_bundle(
        site, [{"type": "reply", "id": rid, "to": str(X25519Identity.generate().recipient()),
                "file": f"{rid}.reply.age"}], {f"{rid}.reply.age": reply}))
    fs.set_day_tree(usb, fs.today())
    await transfer("push", "--dir", str(directory), "--server", url,
                   str(usb / "outbox.bundle"), tmp=tmp)
    check("push of an outbox")
    # Control: what was pushed and fetched is on the server, so the walk walked something.
    assert site.storage.db.execute("SELECT count(*) FROM replies").fetchone() == (1,)
