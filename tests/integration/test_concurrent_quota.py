"""Concurrent uploads against a small quota, through the real server process.

Each upload used to check the quota and the free space for itself, as its own bytes
arrived: eight concurrent 6 MiB uploads with room for about four all passed the
checks at their start, shared the room between them, and all failed midway (issue
13, item 16). Now an upload reserves its declared length when its first file
begins: the four that fit are received, and the others are refused (the translated
503) before they send their files.

Eight raw-socket clients send their request head, fields and the first 16 KiB of
a file, and wait for an early answer; a client that gets none sends the rest. 127.0.0.1
only; bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from intake_server.forms import CSRF_COOKIE
from intake_server.install import init_demo
from support.checkback import codename_from
from support.flood import LANGS, NOTHING_KEPT
from support.server_process import ServerProcess, free_port

MiB = 1024 * 1024
UPLOADS = 8
FILE_BYTES = 6 * MiB
QUOTA = 26 * MiB  # four uploads and their reservations fit, five do not
# How long, once every client has sent the start of its file, an answer counts as
# early: well inside the pace grace (upload.PACE_GRACE_SECONDS) of those that wait.
EARLY_ANSWER_SECONDS = 2.5
BOUNDARY = "quotaboundary"
FIRST_BYTES = 16 * 1024


@pytest.fixture
def small_quota_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    proc = ServerProcess(tmp_path, free_port())
    config = init_demo(proc.demo_dir, port=proc.port)
    text = config.read_text(encoding="utf-8")
    text, n = re.subn(r"(?m)^disk_quota_bytes = \d+$", f"disk_quota_bytes = {QUOTA}", text)
    assert n == 1
    config.write_text(text, encoding="utf-8")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def _upload(port: int, cookie: str, csrf: str, all_started: asyncio.Barrier,
                  lang: str) -> tuple[str, bytes]:
    """("early", answer) if the server answered before the file was sent, else
    ("after", answer)."""
    fields = (("csrf", csrf), ("category", "spyware"), ("desks", "triage"))
    start = "".join(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'
                    f"\r\n\r\n{value}\r\n" for name, value in fields)
    start += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
              f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n')
    end = f"\r\n--{BOUNDARY}--\r\n".encode()
    length = len(start.encode()) + FILE_BYTES + len(end)
    head = (f"POST /{lang}/submit HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Cookie: {CSRF_COOKIE}={cookie}\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # aiohttp finishes a part only once more bytes have come than were buffered
        # (it looks ahead for the boundary), so the first bytes of the file are
        # streamed in small pieces, as a browser's would be.
        data = os.urandom(FILE_BYTES)
        writer.write(head + start.encode())
        for i in range(0, FIRST_BYTES, 1024):
            await asyncio.sleep(0.05)
            writer.write(data[i:i + 1024])
            await writer.drain()
        early = asyncio.ensure_future(reader.read(65536))
        await all_started.wait()
        done, _ = await asyncio.wait([early], timeout=EARLY_ANSWER_SECONDS)
        if done:
            return "early", early.result() + await _rest(reader)
        early.cancel()
        try:
            writer.write(data[FIRST_BYTES:] + end)
            await writer.drain()
        except ConnectionError:
            pass  # refused midway: the answer is waiting
        return "after", await _rest(reader)
    finally:
        writer.close()


async def _rest(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(60):
        return await reader.read()  # to EOF (Connection: close)


async def test_concurrent_uploads_share_the_quota_by_reservation(small_quota_server) -> None:
    server = small_quota_server
    async with server.session() as s:
        csrf = await server.csrf(s)
        cookie = s.cookie_jar.filter_cookies(URL(server.url))[CSRF_COOKIE].value
    all_started = asyncio.Barrier(UPLOADS)
    langs = [LANGS[i % len(LANGS)] for i in range(UPLOADS)]
    results = await asyncio.gather(*(_upload(server.port, cookie, csrf, all_started, lang)
                                     for lang in langs))
    received = [a for when, a in results if a.startswith(b"HTTP/1.1 200 ")]
    refused = [(when, a, lang) for (when, a), lang in zip(results, langs, strict=True)
               if not a.startswith(b"HTTP/1.1 200 ")]
    summary = [(when, a[:12]) for when, a in results]
    # Exactly the uploads that fit were received, with a codename each...
    assert len(received) == 4, summary
    for answer in received:
        assert len(codename_from(answer.decode("utf-8", "replace")).split()) == 7
    # ...and every other one was refused with the 503 in its language, before its file.
    for when, answer, lang in refused:
        assert when == "early", summary
        assert answer.startswith(b"HTTP/1.1 503 "), summary
        assert NOTHING_KEPT[lang].encode() in answer
    assert len(list(server.store_dir.iterdir())) == 4 * 2  # an attachment + a report each
    # The space held for them was given back: another report fits beside the four.
    async with server.session() as s:
        csrf = await server.csrf(s)
        data = aiohttp.FormData()
        for name, value in (("csrf", csrf), ("category", "spyware"), ("desks", "triage")):
            data.add_field(name, value)
        data.add_field("files", os.urandom(MiB), filename="small.bin")
        async with s.post("/en/submit", data=data) as resp:
            assert resp.status == 200
