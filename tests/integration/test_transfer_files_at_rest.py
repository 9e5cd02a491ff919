"""Files at rest on the transfer machine (issue 13, item 9).

`journalist-transfer init` and `fetch`, run as real processes under a permissive umask
against the real staff app: every file they leave, in the transfer directory and on
the stick, is 0600, every directory 0700, and no time is finer than the UTC day.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from intake_server.staff import create_staff_app
from intake_server.staff.app import STAFF_STORE
from keys.signing import VerifyKey
from support.files_at_rest import assert_private_and_dated, walk
from support.staff import Site, make_site, submit


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
async def server(site: Site, aiohttp_server: Any) -> Any:
    app = create_staff_app(site.config, signing_key=site.server_key, storage=site.storage)
    return await aiohttp_server(app, host="127.0.0.1")


async def transfer(*args: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "journalist_client.online.cli", *args],
        capture_output=True, text=True, umask=0o022, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_fetched_bundles_and_the_transfer_directory_are_private_and_dated(
        site: Site, server: Any, tmp_path: Path) -> None:
    directory, usb = tmp_path / "transfer", tmp_path / "usb"
    out = await transfer("init", "--dir", str(directory), "--desk", "triage",
                         "--server-key", str(site.server_key.verify_key),
                         "--keyring", str(site.config.keyring))
    public = out.rsplit(" ", 1)[1].strip()
    server.app[STAFF_STORE].add_transfer_key("triage", VerifyKey.from_text(public))
    assert_private_and_dated(list(walk(directory)))
    await submit(site, ("triage",), b"report", (b"A" * 100_000,))
    url = str(server.make_url("/")).rstrip("/")
    out = await transfer("fetch", "--dir", str(directory), "--server", url, "--out", str(usb))
    assert "Verified bundle" in out
    found = [*walk(directory), *walk(usb)]
    assert {p.name for p, _ in found} >= {"cursor.json", "transfer.key", "transfer.json"}
    assert any(p.name.endswith(".bundle") for p, _ in found)
    assert_private_and_dated(found)
