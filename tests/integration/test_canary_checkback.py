"""Invariant 1 for the check-back: replies and follow-ups leave no plaintext behind.

A canary goes into a desk's reply (made with keys/, stored as the staff side stores
it) and into a follow-up's message, its attachment's name and its content. The
source logs in, reads the reply, sends the follow-up, deletes the reply and logs
out. After a clean shutdown the canary and the codename are searched for under the
install, the server's TMPDIR and its output, in every encoding test_canary.py
knows. Control: the follow-up decrypts, with `age`, to the canary.
"""

from __future__ import annotations

import secrets
import subprocess

import aiohttp

from support.canary import encodings
from support.checkback import (
    codename_from,
    files_of,
    followups,
    reply_file,
    reply_recipients,
    store_reply,
)
from support.files_at_rest import search
from support.server_process import CSRF_RE


async def test_reply_and_followup_canary_is_found_nowhere(server, age_binary) -> None:
    canary = f"CANARY{secrets.token_hex(12)}é ü/x"
    reply_canary = f"REPLYCANARY{secrets.token_hex(12)}"
    async with server.session() as s:
        csrf = await server.csrf(s, "ar")
        data = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        for name, value in (("csrf", csrf), ("category", "msg"), ("desks", "forensics")):
            data.add_field(name, value)
        async with s.post("/ar/submit", data=data) as resp:
            assert resp.status == 200
            codename = codename_from(await resp.text())
        (recipient,) = reply_recipients(server.demo_dir)
        reply_id = store_reply(server.demo_dir, recipient, "forensics",
                               f"{reply_canary} — ردّ من المكتب")

        async with s.get("/ar/login") as resp:
            token = CSRF_RE.search(await resp.text()).group(1)
        async with s.post("/ar/login", data={"csrf": token, "codename": codename}) as resp:
            assert resp.status == 200
            page = await resp.text()
            assert reply_canary in page  # control: it really was decrypted and shown
            session_csrf = CSRF_RE.search(page).group(1)
        pad = secrets.token_bytes(65536 - 7)
        data = aiohttp.FormData(quote_fields=False)
        data.add_field("csrf", session_csrf)
        data.add_field("message", f"follow-up: {canary} ... {canary}")
        data.add_field("files", canary.encode() + pad + canary.encode(),
                       filename=f"{canary}.txt", content_type="text/plain")
        async with s.post("/ar/followup", data=data) as resp:
            assert resp.status == 200
        async with s.post("/ar/inbox/delete",
                          data={"csrf": session_csrf, "reply": reply_id}) as resp:
            assert resp.status == 200
            assert reply_canary not in await resp.text()
        assert not reply_file(server.demo_dir, reply_id).exists()
        async with s.post("/ar/logout", data={"csrf": session_csrf}) as resp:
            assert resp.status == 200
    server.stop()

    for secret in (canary, reply_canary, codename):
        needles = encodings(secret)
        assert search(server.demo_dir, needles) == []
        assert search(server.tmpdir, needles) == []
        for out in (server.stdout_path, server.stderr_path):
            text = out.read_bytes()
            assert not [n for n, v in needles.items() if v in text], out

    # Control: the follow-up holds the canary, readable by the desk only.
    (fid,) = followups(server.demo_dir)
    files = files_of(server.demo_dir, fid)
    plain = b"".join(
        subprocess.run([age_binary, "-d", "-i", str(server.identity("forensics")), str(p)],
                       capture_output=True, check=True).stdout
        for p in files["report"] + files["attachment"])
    assert plain.count(canary.encode()) >= 4
