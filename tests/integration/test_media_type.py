"""One media-type rule on both sides (issue 13, item 4), through the real server.

The server recorded any ASCII ``Content-Type`` (a TAB included); the offline client
then quarantined the report, after the server had deleted its copy on the ack. A
source's browser sends odd part types here to the real `intake-server demo`; what the
server stores must be exactly what keys.media allows, and the client's schema must take
the report as it is.
"""

from __future__ import annotations

import json
import secrets

from journalist_client.schema import parse_document
from keys.age import decrypt
from keys.identity import read_identities
from keys.media import OCTET_STREAM, is_media_type

# (Content-Type header as the browser sends it, what the server must record)
PARTS = [
    (b"image/png\tjunk", OCTET_STREAM),          # a TAB inside: was kept as sent
    (b"IMAGE/PNG ; name=x.png", "image/png"),    # normalised: lower-case, no parameters
    (b"text/plain;charset=utf-8", "text/plain"),
    (b"a/b/c", OCTET_STREAM),                    # two slashes
    (b"text/<script>", OCTET_STREAM),            # not a token character
    (b"/plain", OCTET_STREAM),
    (b"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (b"image/svg+xml", "image/svg+xml"),
    (b"x/" + b"y" * 120, OCTET_STREAM),          # too long
    (b"", OCTET_STREAM),
]


def _body(csrf: str, boundary: str) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
             .encode() for n, v in (("csrf", csrf), ("category", "spyware"),
                                     ("desks", "triage"), ("consent_share", "yes"))]
    for i, (ctype, _) in enumerate(PARTS):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                     f'filename="f{i}.bin"\r\n'.encode() + b"Content-Type: " + ctype
                     + b"\r\n\r\n" + f"file {i}".encode() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


async def test_the_server_records_only_types_the_client_accepts(server) -> None:
    async with server.session() as s:
        csrf = await server.csrf(s)
        boundary = secrets.token_hex(8)
        async with s.post("/en/submit", data=_body(csrf, boundary), headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}"}) as resp:
            assert resp.status == 200, await resp.text()
    identities = read_identities(server.identity("triage").read_bytes(), lambda: "")
    docs = []
    for path in server.store_dir.iterdir():
        plain = decrypt(path.read_bytes(), identities, armored=False)
        if plain.startswith(b"{") and b'"amana.report"' in plain:
            docs.append(plain)
    (raw,) = docs
    doc = json.loads(raw)
    recorded = [a["media_type"] for a in sorted(doc["attachments"], key=lambda a: a["name"])]
    assert recorded == [want for _, want in PARTS]
    assert all(is_media_type(t) for t in recorded)
    # The client's own check takes the report as stored: nothing is quarantined.
    assert parse_document(raw, expected_type="report")["attachments"] == doc["attachments"]
