"""Invariant 1: no plaintext reaches the server's disk, temp files or output.

A unique canary is put into every free-text field, the attachments' names and
inside every attachment (at the start, the middle, across a 64 KiB chunk
boundary and at the end). After the submission and a clean shutdown, the
canary is searched for in every file under the install (data dir, keyring,
config), the server's TMPDIR, and its stdout and stderr, in every encoding a
leak could plausibly take: raw UTF-8, UTF-16 (LE/BE), base64 (all three
alignments), hex (both cases) and URL-encoding (%-escapes and '+').
As a control, the stored ciphertext is decrypted with `age` and must contain it.
"""

from __future__ import annotations

import secrets
import subprocess

import aiohttp

from support.canary import encodings
from support.files_at_rest import search

TEXT_FIELDS = ("incident_date", "description", "links", "senders", "messages",
               "device_details")


async def test_canary_is_found_nowhere(server, age_binary) -> None:
    canary = f"CANARY{secrets.token_hex(12)}é ü/x"
    fields = [("csrf", None), ("category", "exposure"), ("secondary", "harass"),
              ("country", "TN")]
    fields += [(name, f"{name}: {canary} ... {canary}") for name in TEXT_FIELDS]
    fields += [("target", "organisation"), ("desks", "triage"), ("desks", "forensics"),
               ("consent_share", "yes")]
    pad = secrets.token_bytes(65536 - 10)
    blob = canary.encode() + pad + canary.encode() + pad + canary.encode()
    async with server.session() as s:
        csrf = await server.csrf(s, "ar")
        data = aiohttp.FormData(quote_fields=False)
        for name, value in fields:
            data.add_field(name, csrf if name == "csrf" else value)
        data.add_field("files", blob, filename=f"{canary}.bin", content_type="text/plain")
        data.add_field("files", canary.encode("utf-16"), filename="b.txt",
                       content_type="text/plain")
        async with s.post("/ar/submit", data=data) as resp:
            assert resp.status == 200
        # Refused submissions must not leak it either: in an unknown field's name
        # and value, and next to invalid UTF-8.
        for bad_name, bad_value in [(f"x{canary}".encode(), canary.encode()),
                                    (b"description", canary.encode() + b"\xff")]:
            token = await server.csrf(s, "fr")
            body = b"".join(
                b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (n, v)
                for n, v in [(b"csrf", token.encode()), (b"category", b"web"),
                             (b"desks", b"triage"), (bad_name, bad_value)]) + b"--B--\r\n"
            async with s.post("/fr/submit", data=body, headers={
                    "Content-Type": "multipart/form-data; boundary=B"}) as resp:
                assert resp.status == 400
        async with s.get(f"/en/{canary}") as resp:
            assert resp.status == 404
    server.stop()  # flush everything the server might write on the way out

    needles = encodings(canary)
    assert search(server.demo_dir, needles) == []
    assert search(server.tmpdir, needles) == []
    for out in (server.stdout_path, server.stderr_path):
        text = out.read_bytes()
        assert not [n for n, v in needles.items() if v in text], out

    # Control: the canary really was submitted, and only the ciphertext holds it.
    plain = b"".join(
        subprocess.run([age_binary, "-d", "-i", str(server.identity("triage")), str(p)],
                       capture_output=True, check=True).stdout
        for p in server.store_dir.iterdir())
    assert plain.count(canary.encode()) >= 3 + 2 * len(TEXT_FIELDS)
