"""Six signed exports of one desk at once against the real demo server process (issue
13, item 12): they used to race each other to the same name in outgoing/ and one got
a 500 with a FileExistsRefused traceback. Every one must get the same bundle, built
once, and the server's output must hold no traceback."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

import aiohttp

from keys.request_auth import sign_request
from keys.signing import SigningKey
from support.server_process import ServerProcess, free_port
from support.source import submit_report

BIN = Path(sys.executable).parent


async def test_parallel_exports_of_one_desk_all_get_the_one_bundle(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, free_port())
    server.start()
    try:
        transfer = SigningKey.generate()
        subprocess.run([str(BIN / "intake-server"), "desk", "add-transfer-key", "--config",
                        str(server.demo_dir / "intake-server.toml"), "--desk", "triage",
                        str(transfer.verify_key)], check=True, capture_output=True, timeout=60)
        async with server.session() as source:
            for n in range(3):
                await submit_report(source, files=(("log.txt", b"%d" % n * 300_000),))
        path = "/v1/desks/triage/bundle?after=0"

        async def fetch(staff: aiohttp.ClientSession) -> tuple[int, bytes]:
            headers = sign_request(transfer, method="GET", path=path, desk="triage",
                                   body_sha256=hashlib.sha256(b"").hexdigest())
            async with staff.get(path, headers=headers) as resp:
                return resp.status, await resp.read()

        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.staff_port}") as staff:
            answers = await asyncio.gather(*(fetch(staff) for _ in range(6)))
    finally:
        server.stop()
    assert [status for status, _ in answers] == [200] * 6
    assert len({body for _, body in answers}) == 1
    outgoing = sorted(p.name for p in (server.demo_dir / "data" / "outgoing").iterdir())
    assert outgoing == ["triage-0-3.bundle"]
    assert b"Traceback" not in server.stderr_path.read_bytes()
