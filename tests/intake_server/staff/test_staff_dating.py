"""Staff-side requests leave no time finer than the UTC day anywhere under the data
directory (issue 13, item 3): after a fetch, an ack push and a reply push, every file
and directory, the database with its WAL and SHM included, has its atime and mtime at
midnight UTC, as the source side's writes already leave them.

Driven over real sockets through aiohttp's test server, on the real file system: with
relatime, a read after a write sets the atime to the second, so atimes are checked too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intake_server.storage import utc_today
from keys import fs
from keys.age import X25519Identity, encrypt
from support.files_at_rest import times_finer_than_the_day
from support.intake import eventually
from support.staff import Site, ack_bundle, fetch, outbox_bundle, post, submit


async def _check(root: Path) -> None:
    # The server dates the bundle it sent once sending has ended, which may be a moment
    # after the client has read its last byte.
    await eventually(lambda: not times_finer_than_the_day(root), timeout=2)
    bad = times_finer_than_the_day(root)
    assert not bad, "\n".join(bad)


async def test_fetch_ack_and_reply_leave_only_day_level_times(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    data = site.config.data_dir
    sid = await submit(site, ("triage",), b"report", (b"photo",))
    assert fs.day_timestamp(utc_today()) % 86400 == 0

    raw, _ = await fetch(staff, site, "triage")
    assert raw
    await _check(data)

    resp = await post(staff, site, "triage", "acks", ack_bundle(site, "triage", [sid]))
    assert (await resp.json())["deleted"] == 1
    await _check(data)

    recipient = str(X25519Identity.generate().recipient())
    rid = "ab" * 16
    reply = encrypt(b"we read your report", [X25519Identity.generate().recipient()])
    items = [{"type": "reply", "id": rid, "to": recipient, "file": f"{rid}.reply.age"}]
    resp = await post(staff, site, "triage", "outbox",
                      outbox_bundle(site, items, {f"{rid}.reply.age": reply}))
    assert (await resp.json())["replies"] == 1
    await _check(data)
    assert len(list((data / "replies").iterdir())) == 1  # listing it stamps its atime

    # A fetch that finds nothing new still reads (and so, with relatime, stamps).
    await fetch(staff, site, "triage", after="1")
    await _check(data)
