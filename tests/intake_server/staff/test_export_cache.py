"""The export cache in outgoing/: built once under concurrency, bounded per desk, counted
in the disk quota, and never built onto a disk without room for it (issue 13, items 2
and 12).

Driven over real sockets through aiohttp's test server; submissions go in through the
source side's real storage path.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from intake_server.staff.app import STAFF_STORE
from intake_server.staff.store import StaffStore
from keys import fs
from support.staff import Site, fetch, make_site, signed, submit


def _cached(site: Site, desk: str) -> list[Path]:
    outgoing = site.config.data_dir / "outgoing"
    return sorted(p for p in outgoing.iterdir() if p.name.startswith(f"{desk}-"))


async def test_parallel_fetches_build_the_bundle_once_and_all_succeed(
    site: Site, staff: Any
) -> None:
    for n in range(3):
        await submit(site, ("triage",), b"report %d" % n, (b"x" * 200_000,))
    path = "/v1/desks/triage/bundle?after=0"

    async def one() -> tuple[int, bytes]:
        # Each request signed on its own: the nonce is single-use.
        resp = await staff.get(path, headers=signed(site, "triage", "GET", path))
        return resp.status, await resp.read()

    answers = await asyncio.gather(*(one() for _ in range(6)))
    assert [status for status, _ in answers] == [200] * 6
    # One bundle, built once: every answer is the very same bytes (a resume may mix them).
    assert len({body for _, body in answers}) == 1
    assert [p.name for p in _cached(site, "triage")] == ["triage-0-3.bundle"]


async def test_the_cache_holds_one_bundle_per_desk_and_counts_in_the_quota(
    site: Site, staff: Any
) -> None:
    for n in range(4):
        await submit(site, ("triage", "forensics"), b"report %d" % n, (b"y" * 50_000,))
    stored = site.storage.used_bytes
    # A stolen transfer credential asking for every cursor value in turn.
    for after in range(5):
        await fetch(staff, site, "triage", after=str(after))
    await fetch(staff, site, "forensics")
    (triage,) = _cached(site, "triage")
    assert triage.name == "triage-4-4.bundle"
    (forensics,) = _cached(site, "forensics")
    cache = triage.stat().st_size + forensics.stat().st_size
    assert site.storage.used_bytes == stored + cache
    # Deleting a submission drops the cache, and its bytes leave the count with it.
    staff.server.app[STAFF_STORE].delete_submission(site.storage.submissions()[0]["id"])
    assert _cached(site, "triage") == _cached(site, "forensics") == []
    assert site.storage.used_bytes < stored


async def test_no_bundle_is_built_onto_a_disk_without_room_for_it(
    site: Site, staff: Any
) -> None:
    await submit(site, ("triage",), b"report", (b"z" * 300_000,))
    floor = site.config.min_free_bytes
    # Free space above the floor, but not by the bundle's size.
    site.storage._free_space = lambda _path: floor + 100_000  # type: ignore[method-assign]
    path = "/v1/desks/triage/bundle?after=0"
    resp = await staff.get(path, headers=signed(site, "triage", "GET", path))
    assert resp.status == 503
    assert _cached(site, "triage") == []
    site.storage._free_space = lambda _path: floor + 10_000_000  # type: ignore[method-assign]
    raw, cursor = await fetch(staff, site, "triage")
    assert cursor == "1"
    assert raw


async def test_a_bundle_build_a_crash_interrupted_is_removed_at_start(tmp_path: Path) -> None:
    """AtomicWriter's hidden partial file, left in outgoing/ by a crash mid-build, is
    neither counted nor fatal: the server removes it at start, and deleting
    submissions meanwhile steps over it."""
    site = make_site(tmp_path)
    outgoing = site.config.data_dir / "outgoing"
    fs.private_dir(outgoing)
    partial = outgoing / ".triage-0-1.bundle.0123456789abcdef.partial"
    partial.write_bytes(b"x" * 1000)
    store = StaffStore(site.storage)
    store.open()
    assert not partial.exists()
    partial.write_bytes(b"x" * 1000)  # a build in progress while a deletion runs
    sid = await submit(site, ("triage",), b"report")
    store.delete_submission(sid)
    assert partial.exists()
    site.storage.close()
