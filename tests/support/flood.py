"""Floods against a real server process: many submissions at once, many logins, and a
watch on what the server's process tree holds meanwhile.

Shared by tests/integration/test_floods.py (a quick version in `make test`, the full
one in `make soak`) and bench/memory.py (which records the figures in
docs/benchmarks.md). 127.0.0.1 only; every loop is bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass

import aiohttp

from keys.codename import ARGON2_MEMLIMIT, generate_codename
from support.procstat import sample_tree
from support.server_process import CSRF_RE, ServerProcess

__all__ = ["BUSY_TITLE", "FULL_TITLE", "LANGS", "NOTHING_KEPT", "Sent", "TreeWatch",
           "configured_memory_kib", "login_flood", "submission_flood"]

LANGS = ("en", "ar", "fr")
# The translated page a source gets when every upload slot and the queue are taken.
BUSY_TITLE = {"en": "The server is busy", "ar": "الخادم مشغول", "fr": "Le serveur est occupé"}
# The translated 503 page: over the quota, under the free-space floor, a full disk.
FULL_TITLE = {"en": "Reports cannot be accepted right now",
              "ar": "لا يمكن قبول البلاغات الآن",
              "fr": "Les signalements ne peuvent pas être acceptés pour le moment"}
NOTHING_KEPT = {"en": "Nothing was kept.", "ar": "لم يُحفظ أي شيء.",
                "fr": "Rien n'a été conservé."}

MiB = 1024 * 1024
# What the server's process tree may hold, by configuration (docs/operations.md): the
# server process itself (the interpreter and the app), the pieces of an upload in
# flight for each slot (threat-model.md: about 8 MiB), what each open connection
# costs it (the unit's LimitNOFILE bounds their number), and for each Argon2id worker
# (codenames and logins) its work area and an interpreter of its own; plus
# multiprocessing's resource tracker.
SERVER_BASE_MIB = 96
PER_UPLOAD_SLOT_MIB = 8
PER_CONNECTION_KIB = 48
WORKER_BASE_MIB = 32
TRACKER_MIB = 16


def configured_memory_kib(max_concurrent_uploads: int = 8, max_concurrent_derivations: int = 2,
                          max_concurrent_logins: int = 1, connections: int = 2048) -> int:
    """The bound docs/operations.md states for the whole server, in KiB."""
    workers = max_concurrent_derivations + max_concurrent_logins
    mib = (SERVER_BASE_MIB + max_concurrent_uploads * PER_UPLOAD_SLOT_MIB + TRACKER_MIB
           + workers * (ARGON2_MEMLIMIT // MiB + WORKER_BASE_MIB))
    return mib * 1024 + connections * PER_CONNECTION_KIB


@dataclass
class Sent:
    """One submission of a flood and what the server answered."""

    lang: str
    marker: str
    sha256: str
    size: int
    status: int = 0
    page: str = ""


class TreeWatch:
    """Samples the server's process tree every ``interval`` seconds until stopped:
    the peak PSS and RSS of the whole tree, of the server process, its open files and
    the number of processes."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.peak_pss_kib = 0
        self.peak_rss_kib = 0
        self.peak_server_rss_kib = 0
        self.peak_fds = 0
        self.peak_processes = 0
        self.samples = 0
        self._pid = pid
        self._interval = interval
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:  # until stop() cancels it
            s = sample_tree(self._pid)
            self.peak_pss_kib = max(self.peak_pss_kib, s.pss_kib)
            self.peak_rss_kib = max(self.peak_rss_kib, s.rss_kib)
            self.peak_server_rss_kib = max(self.peak_server_rss_kib, s.server_rss_kib)
            self.peak_fds = max(self.peak_fds, s.server_fds)
            self.peak_processes = max(self.peak_processes, s.processes)
            self.samples += 1
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _submit(server: ServerProcess, sent: Sent, attachment: bytes,
                  gate: asyncio.Semaphore) -> None:
    async with gate, server.session() as s:
        csrf = await server.csrf(s, sent.lang)
        data = aiohttp.FormData(quote_fields=False)
        for name, value in (("csrf", csrf), ("category", "spyware"), ("desks", "triage"),
                            ("description", f"{sent.marker} فيضان")):
            data.add_field(name, value)
        data.add_field("files", attachment, filename=f"{sent.marker}.bin",
                       content_type="application/octet-stream")
        async with s.post(f"/{sent.lang}/submit", data=data) as resp:
            sent.status = resp.status
            sent.page = await resp.text()


async def submission_flood(server: ServerProcess, count: int, *, big_every: int = 10,
                           big_bytes: int = MiB, small_bytes: int = 2000,
                           connections: int = 1000) -> list[Sent]:
    """``count`` submissions sent at once (every ``big_every``-th with a ``big_bytes``
    attachment, the others ``small_bytes``), in turn in each language; each Sent has
    the status and page the server answered."""
    gate = asyncio.Semaphore(connections)
    sent, jobs = [], []
    for i in range(count):
        attachment = secrets.token_bytes(big_bytes if i % big_every == 0 else small_bytes)
        one = Sent(LANGS[i % len(LANGS)], f"flood-{secrets.token_hex(8)}",
                   hashlib.sha256(attachment).hexdigest(), len(attachment))
        sent.append(one)
        jobs.append(_submit(server, one, attachment, gate))
    await asyncio.gather(*jobs)
    return sent


async def login_flood(server: ServerProcess, count: int, concurrency: int = 50) -> list[int]:
    """``count`` wrong logins (well-formed codenames of nobody, each worth two Argon2id
    runs if it gets through), ``concurrency`` at a time; their statuses."""
    statuses: list[int] = []
    async with server.session() as s:
        async with s.get("/en/login") as resp:
            match = CSRF_RE.search(await resp.text())
            assert match
            csrf = match.group(1)
        gate = asyncio.Semaphore(concurrency)

        async def attempt() -> None:
            async with gate, s.post("/en/login",
                                    data={"csrf": csrf, "codename": generate_codename()},
                                    allow_redirects=False) as resp:
                await resp.read()
                statuses.append(resp.status)

        await asyncio.gather(*(attempt() for _ in range(count)))
    return statuses
