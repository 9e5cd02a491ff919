"""The two apps as `intake-server serve` builds them: one Storage and one StaffStore
shared, so what the staff side holds is counted in the quota once.

Review finding (issue 14): each app opened its own StaffStore on the shared Storage, and
each one added the cached export bundles found in outgoing/ to the quota at start-up.
After every restart the cache counted twice, and intake was refused early.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from intake_server.__main__ import build_apps
from intake_server.staff.app import STAFF_STORE
from intake_server.state import REPLIES, STORAGE
from keys import fs
from keys.signing import SigningKey
from support.intake import make_install


async def test_a_cached_bundle_counts_once_in_the_quota(tmp_path: Path) -> None:
    install = make_install(tmp_path)
    outgoing = install.config.data_dir / "outgoing"
    fs.private_dir(outgoing, parents=True)
    cached = outgoing / "triage-0-1.bundle"  # what a previous run left in the cache
    cached.write_bytes(b"\0" * 12_345)

    source, staff = build_apps(install.config, SigningKey.generate())
    runners = [web.AppRunner(source), web.AppRunner(staff)]
    try:
        for runner in runners:  # start-up only: what `serve` runs before it listens
            await runner.setup()
        assert staff[STAFF_STORE] is source[REPLIES]
        assert source[STORAGE].used_bytes == 12_345
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
