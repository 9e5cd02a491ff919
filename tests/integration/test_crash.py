"""Invariant 2: kill -9 mid-upload leaves no half-visible report; restart cleans up.
A clean stop mid-upload deletes the partial upload before the server exits.

A first report is acknowledged; a second one is killed mid-stream (its ciphertext
partly written to incoming/). After SIGKILL: no row and no store/ file for the
second, the first intact. After restart: incoming/ is empty, the first report
still decrypts with `age`, and the server accepts new reports.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import aiohttp
import yarl


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def rows(server) -> list[tuple[str, ...]]:
    db = server.demo_dir / "data" / "intake.db"
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id FROM files ORDER BY id").fetchall()


async def submit_small(server) -> None:
    async with server.session() as s:
        csrf = await server.csrf(s)
        data = aiohttp.FormData(quote_fields=False)
        for name, value in [("csrf", csrf), ("category", "seized"), ("desks", "triage")]:
            data.add_field(name, value)
        data.add_field("files", b"kept" * 1000, filename="kept.txt",
                       content_type="text/plain")
        async with s.post("/en/submit", data=data) as resp:
            assert resp.status == 200


async def start_partial_upload(server) -> socket.socket:
    """A connection in the middle of a 50 MiB upload, once more than 1 MiB of its
    ciphertext is in incoming/. The caller closes the socket."""
    async with server.session() as s:
        csrf = await server.csrf(s)
        cookie = s.cookie_jar.filter_cookies(yarl.URL(server.url))["amana_csrf"].value
    boundary = "crashboundary"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
        for n, v in [("csrf", csrf), ("category", "spyware"), ("desks", "triage")]
    ) + (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
         f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n')
    total = len(head) + 50 * 1024 * 1024  # promised, never completed
    request = (f"POST /en/submit HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               f"Cookie: amana_csrf={cookie}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               f"Content-Length: {total}\r\n\r\n{head}").encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sock.sendall(request)
        chunk = b"\x42" * 65536
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            sock.sendall(chunk * 8)
            partial = list(server.incoming_dir.iterdir())
            if partial and partial[0].stat().st_size > 1024 * 1024:
                return sock
            await asyncio.sleep(0.01)
        raise AssertionError("the upload never reached incoming/")
    except BaseException:
        sock.close()
        raise


async def test_kill_9_mid_upload(server, age_binary) -> None:
    await submit_small(server)
    acknowledged = rows(server)
    assert len(acknowledged) == 2
    stored_before = sorted(p.name for p in server.store_dir.iterdir())

    sock = await start_partial_upload(server)
    try:
        workers = server.kill9()
    finally:
        sock.close()
    # The codename workers die with the server rather than linger as orphans.
    assert workers
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and _is_running(pid) for pid in workers):
        assert time.monotonic() < deadline, "codename worker outlived the server"
        await asyncio.sleep(0.05)

    # Half-written ciphertext is only in incoming/, never in store/ or the database.
    assert list(server.incoming_dir.iterdir())
    assert sorted(p.name for p in server.store_dir.iterdir()) == stored_before
    assert rows(server) == acknowledged

    server.start()
    assert list(server.incoming_dir.iterdir()) == []  # orphans removed at start-up
    assert sorted(p.name for p in server.store_dir.iterdir()) == stored_before
    plain = [subprocess.run([age_binary, "-d", "-i", str(server.identity("triage")),
                             str(server.store_dir / name)],
                            capture_output=True, check=True).stdout for name in stored_before]
    assert b"kept" * 1000 in plain
    await submit_small(server)
    assert len(rows(server)) == 4


async def test_sigterm_mid_upload_deletes_it_before_exit(server) -> None:
    """A clean stop (systemd's SIGTERM) while an upload streams in: the server
    cancels the upload and deletes its ciphertext itself before it exits, with
    status 0, rather than leaving it for the next start. (That the cleanup waits
    for a write stalled on the disk: test_storage.py.)"""
    await submit_small(server)
    acknowledged = rows(server)
    stored_before = sorted(p.name for p in server.store_dir.iterdir())

    sock = await start_partial_upload(server)
    try:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=15) == 0
        server.proc = None
    finally:
        sock.close()
    assert list(server.incoming_dir.iterdir()) == []
    assert sorted(p.name for p in server.store_dir.iterdir()) == stored_before
    assert rows(server) == acknowledged
    assert "Traceback" not in server.stderr_path.read_text()


def _mapped_semaphores(pid: int) -> set[Path]:
    """The POSIX semaphores (/dev/shm/sem.*) a process has open: they are mmapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {Path(line.split(maxsplit=5)[5]) for line in maps.splitlines()
            if len(line.split(maxsplit=5)) == 6 and "/dev/shm/sem." in line}


async def test_kill_9_leaves_no_semaphore_in_dev_shm(server) -> None:
    """The codename worker pool's queues use named POSIX semaphores. When the server is
    killed, multiprocessing's resource tracker (a process of its own) unlinks them.
    Under systemd the unit's PrivateDevices= gives the service a /dev/shm of its own
    that ends with it, and RemoveIPC= removes what its user left (tests/deploy)."""
    await submit_small(server)  # the first submission starts the worker pool
    assert server.proc is not None
    semaphores = _mapped_semaphores(server.proc.pid)
    assert semaphores, "the pool uses no named semaphore: this test checks nothing"
    server.kill9()
    deadline = time.monotonic() + 10
    while any(p.exists() for p in semaphores):
        assert time.monotonic() < deadline, f"left in /dev/shm: {semaphores}"
        await asyncio.sleep(0.1)
    server.start()
