"""Helpers for the source check-back tests: submit, log in, store a reply with keys/."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp

from intake_server.state import REPLIES, STORAGE
from keys import fs
from keys.age import encrypt, parse_recipient

CODENAME_RE = re.compile(r'<p class="codename"[^>]*>(.*?)</p>', re.DOTALL)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


async def submit_report(client: Any, lang: str = "en", desks: tuple[str, ...] = ("triage",),
                        files: tuple[tuple[str, bytes], ...] = (),
                        description: str = "my phone") -> str:
    """Send a first report through the form; returns the codename shown."""
    from support.intake import form, get_csrf

    csrf = await get_csrf(client, lang)
    fields = [("csrf", csrf), ("category", "spyware"), ("description", description)]
    fields += [("desks", d) for d in desks]
    resp = await client.post(f"/{lang}/submit", data=form(fields, files))
    assert resp.status == 200, await resp.text()
    match = CODENAME_RE.search(await resp.text())
    assert match
    return " ".join(re.findall(r"<span>([a-z-]+)</span>", match.group(1)))


async def login_csrf(client: Any, lang: str = "en") -> str:
    resp = await client.get(f"/{lang}/login", allow_redirects=False)
    assert resp.status == 200
    match = CSRF_RE.search(await resp.text())
    assert match
    return match.group(1)


async def login(client: Any, codename: str, lang: str = "en") -> aiohttp.ClientResponse:
    csrf = await login_csrf(client, lang)
    return await client.post(f"/{lang}/login", data={"csrf": csrf, "codename": codename},
                             allow_redirects=False)


async def page_csrf(client: Any, lang: str = "en") -> str:
    """The session's CSRF token, from the inbox page."""
    resp = await client.get(f"/{lang}/inbox", allow_redirects=False)
    assert resp.status == 200, resp.status
    match = CSRF_RE.search(await resp.text())
    assert match
    return match.group(1)


def source_row(client: Any) -> dict[str, Any]:
    rows = client.server.app[STORAGE].db.execute(
        "SELECT source_id, reply_recipient, last_seen_day FROM sources").fetchall()
    assert len(rows) == 1
    return {"source_id": rows[0][0], "reply_recipient": rows[0][1], "last_seen_day": rows[0][2]}


def reply_document(desk: str, body: str, day: str = "2026-11-28") -> bytes:
    return json.dumps({"format": "amana-reply", "version": 1, "desk": desk, "day": day,
                       "body": body}, ensure_ascii=False).encode("utf-8")


def store_reply(client: Any, reply_recipient: str, desk: str, plaintext: bytes,
                desk_recipient: str | None = None) -> str:
    """A reply as a desk sends it: age-encrypted to the source and the desk, via StaffStore."""
    recipients = [parse_recipient(reply_recipient)]
    if desk_recipient:
        recipients.append(parse_recipient(desk_recipient))
    ciphertext = encrypt(plaintext, recipients)

    def write(path: Any) -> None:
        with fs.create_exclusive(path.parent, path.name) as f:
            f.write(ciphertext)

    return client.server.app[REPLIES].store_reply(reply_recipient=reply_recipient, desk=desk,
                                                  write=write)
