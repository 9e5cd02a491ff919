"""A flood of 500 wrong logins against the real server process.

Every Tor client arrives from 127.0.0.1, so the flood looks like any source. It must
be bounded in what it costs the server: the global bucket answers most attempts
429 at once, the login pool derives at most max_concurrent_logins at a time with a
short queue, and failed logins create nothing. Meanwhile and afterwards a
submission still gets its codename (its derivations have their own pool and
reserve), the server process's peak RSS (VmHWM) stays small, and the worker
processes stay few. 127.0.0.1 only; bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from keys.codename import generate_codename
from support.checkback import codename_from
from support.server_process import CSRF_RE

FLOOD = 500
CONCURRENCY = 50
# The server process alone; Argon2id's 256 MiB live in the worker processes.
MAX_SERVER_HWM_KIB = 200 * 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


async def _submit(server, s: aiohttp.ClientSession) -> tuple[str, float]:
    start = time.monotonic()
    csrf = await server.csrf(s, "fr")
    data = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    for name, value in (("csrf", csrf), ("category", "acct"), ("desks", "triage"),
                        ("description", "pendant l'inondation")):
        data.add_field(name, value)
    async with s.post("/fr/submit", data=data) as resp:
        assert resp.status == 200
        return codename_from(await resp.text()), time.monotonic() - start


async def test_flood_of_wrong_logins_leaves_submissions_working(server) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    hwm_before = _status_kib(pid, "VmHWM")
    async with server.session() as s:
        async with s.get("/en/login") as resp:
            csrf = CSRF_RE.search(await resp.text()).group(1)
        gate = asyncio.Semaphore(CONCURRENCY)
        statuses: list[int] = []
        kids_seen: set[int] = set()

        async def attempt(i: int) -> None:
            # Mostly well-formed codenames (each costs Argon2id if it gets through),
            # some garbage (costs nothing but the same slow answer).
            text = generate_codename() if i % 5 else f"guess {i} " * 3
            async with gate, s.post("/en/login", data={"csrf": csrf, "codename": text},
                                    allow_redirects=False) as resp:
                statuses.append(resp.status)
                await resp.read()
                kids_seen.update(server.children())

        start = time.monotonic()
        flood = asyncio.gather(*(attempt(i) for i in range(FLOOD)))
        await asyncio.sleep(0.5)
        # In the middle of the flood, a source sends a report.
        codename, during = await _submit(server, s)
        await asyncio.wait_for(flood, timeout=120)
        flood_seconds = time.monotonic() - start
        assert len(codename.split()) == 7
        # And after it, another.
        codename2, after = await _submit(server, s)
        assert codename2 != codename
        # The flood emptied the bucket; it refills (one login every 2 s by default),
        # and the real source gets in.
        deadline = time.monotonic() + 30
        while True:
            t0 = time.monotonic()
            async with s.post("/en/login", data={"csrf": csrf, "codename": codename},
                              allow_redirects=False) as resp:
                login_seconds = time.monotonic() - t0
                if resp.status == 303:
                    break
                assert resp.status == 429
            assert time.monotonic() < deadline
            await asyncio.sleep(1)

    assert len(statuses) == FLOOD
    assert set(statuses) <= {403, 429}, set(statuses)
    let_through = statuses.count(403)
    # The bucket (burst 10, 30 a minute) let a handful through; the rest were told
    # to come back later, at once.
    assert 1 <= let_through <= 10 + 30 * (flood_seconds / 60) + 1, let_through
    hwm = _status_kib(pid, "VmHWM")
    rss = _status_kib(pid, "VmRSS")
    # Submission workers (2) + login worker (1) + multiprocessing's helpers.
    assert len(kids_seen) <= 5, kids_seen
    print(f"\nflood: {FLOOD} logins in {flood_seconds:.1f}s, {let_through} derived, "
          f"{statuses.count(429)} refused; submission during {during:.2f}s, "
          f"after {after:.2f}s; real login {login_seconds:.2f}s; "
          f"server VmHWM {hwm_before // 1024} -> {hwm // 1024} MiB, "
          f"VmRSS {rss // 1024} MiB; worker processes seen {len(kids_seen)}")
    assert hwm < MAX_SERVER_HWM_KIB, hwm
    assert during < 30
    assert after < 30
