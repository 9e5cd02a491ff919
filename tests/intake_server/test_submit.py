"""The upload path: a full submission in each language, and every refusal.

Every refused submission must answer with the right status and a translated page,
and leave nothing behind: no file in incoming/ or store/, no row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from intake_server import upload
from intake_server.state import SOURCES, UPLOADS
from keys.age import AgeError, decrypt
from support.intake import (
    DESKS,
    LANGS,
    assert_nothing_stored,
    base_fields,
    eventually,
    form,
    get_csrf,
    make_install,
)
from support.server_process import report_document

ERROR_TITLES = {
    400: {"en": "The request could not be understood", "ar": "تعذّر فهم الطلب",
          "fr": "La requête n'a pas pu être comprise"},
    403: {"en": "This request was refused", "ar": "رُفض هذا الطلب",
          "fr": "Cette requête a été refusée"},
    408: {"en": "The upload was too slow", "ar": "كان الرفع بطيئًا جدًا",
          "fr": "L'envoi était trop lent"},
    413: {"en": "Your report is too large", "ar": "بلاغك كبير جدًا",
          "fr": "Votre signalement est trop volumineux"},
    429: {"en": "The server is busy", "ar": "الخادم مشغول", "fr": "Le serveur est occupé"},
    503: {"en": "Reports cannot be accepted right now", "ar": "لا يمكن قبول البلاغات الآن",
          "fr": "Les signalements ne peuvent pas être acceptés pour le moment"},
}


# A refusal the source can put right gives the form back (test_form_kept.py); a 413
# says so with the 413 title above, a 400 with this one.
FORM_BACK_TITLE = {"en": "Your report was not sent yet", "ar": "لم يُرسَل بلاغك بعد",
                   "fr": "Votre signalement n'a pas encore été envoyé"}


async def assert_refused(resp, status: int, lang: str, *, form_back: bool = False) -> str:
    assert resp.status == status
    html = await resp.text()
    if form_back and status == 400:
        assert FORM_BACK_TITLE[lang] in html
    else:
        assert ERROR_TITLES[status][lang] in html
    assert f'<html lang="{lang}"' in html
    assert "Server" not in resp.headers
    assert "Date" not in resp.headers
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    return html


def full_fields(csrf: str) -> list[tuple[str, str]]:
    return [
        ("csrf", csrf), ("category", "msg"), ("secondary", "acct"), ("secondary", "spyware"),
        ("country", "LB"), ("incident_date", "early March"),
        ("description", "نص عربي and text\r\nline two"), ("links", "hxxp://evil.example/x"),
        ("senders", "+961 1 234 567"), ("messages", "Your parcel is waiting"),
        ("target", "self"), ("profession", "journalist"), ("platforms", "ios"),
        ("platforms", "web"), ("device_details", "iPhone 13"),
        ("desks", "triage"), ("desks", "forensics"),
        ("consent_share", "yes"), ("consent_publish", "yes"),
    ]


@pytest.mark.parametrize("lang", LANGS)
async def test_full_submission_is_encrypted_to_each_chosen_desk(client, install, lang) -> None:
    csrf = await get_csrf(client, lang)
    files = [("../../etc/passwd", b"first file\x00\xff" * 1000),
             ("صورة.png", os.urandom(70_000))]
    resp = await client.post(f"/{lang}/submit", data=form(full_fields(csrf), files))
    assert resp.status == 200
    html = await resp.text()
    words = re.findall(r"<span>([a-z-]+)</span>", html)
    assert len(words) == 7
    codename = " ".join(words)

    stored = install.stored_names()
    assert len(stored) == 3
    assert install.incoming_names() == []
    assert all(re.fullmatch(r"[0-9a-f]{32}\.age", n) for n in stored)
    today = dt.datetime.now(dt.UTC).date()
    midnight = dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC).timestamp()
    for name in stored:
        st = (install.config.store_dir / name).stat()
        assert st.st_mtime == midnight
        assert st.st_atime == midnight
        assert st.st_mode & 0o777 == 0o600

    # Each desk alone can open every file.
    plain = {}
    for name in stored:
        data = (install.config.store_dir / name).read_bytes()
        outs = [decrypt(data, [install.identities[d]]) for d in ("triage", "forensics")]
        assert outs[0] == outs[1]
        plain[name.removesuffix(".age")] = outs[0]
    # Found by parsing, not by a first byte: a random attachment starts with "{" one
    # time in 256, and made this test fail as often.
    doc = report_document(plain)
    assert doc["schema"] == "amana.report"
    assert doc["version"] == 1
    assert doc["language"] == lang
    assert doc["received_day"] == today.isoformat()
    assert doc["desks"] == ["triage", "forensics"]
    assert doc["reply_recipient"].startswith("age1")
    a = doc["answers"]
    assert a["category"] == "msg"
    assert a["secondary_categories"] == ["acct", "spyware"]
    assert a["description"] == "نص عربي and text\nline two"
    assert a["indicators"] == {"links": "hxxp://evil.example/x", "senders": "+961 1 234 567",
                               "messages": "Your parcel is waiting"}
    assert a["platforms"] == ["ios", "web"]
    assert a["target"] == "self"
    assert a["consent"] == {"share_within_coalition": True, "publish_anonymised": True}
    names = [att["name"] for att in doc["attachments"]]
    assert names == ["passwd", "صورة.png"]
    for att, (_, content) in zip(doc["attachments"], files, strict=True):
        assert plain[att["file_id"]] == content
        assert att["size"] == len(content)
        assert att["sha256"] == hashlib.sha256(content).hexdigest()

    # Metadata: ids, day, desks, sizes, source id and reply recipient; nothing else.
    import sqlite3
    with sqlite3.connect(install.config.db_path) as conn:
        sub = conn.execute("SELECT id, day, source_id, reply_recipient FROM submissions").fetchall()
        assert len(sub) == 1
        assert sub[0][0] == doc["submission_id"]
        assert sub[0][1] == today.isoformat()
        assert re.fullmatch(r"[0-9a-f]{64}", sub[0][2])
        assert sub[0][3] == doc["reply_recipient"]
        desks = conn.execute("SELECT desk_id FROM submission_desks ORDER BY desk_id").fetchall()
        assert desks == [("forensics",), ("triage",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The codename is shown once and stored nowhere, nor any word of it. Not a word that
    # is also a desk id: "triage" is in the EFF list, and was drawn (once in 7,776 runs
    # the fourth word is), and the database names its desk.
    word = next(w for w in words[3:] if w not in DESKS)
    for path in install.data_dir.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert codename.encode() not in blob
            assert word.encode() not in blob
            assert b"passwd" not in blob


async def test_empty_file_input_is_ignored_and_default_desk_only(client, install) -> None:
    csrf = await get_csrf(client)
    resp = await client.post("/en/submit", data=form(base_fields(csrf), [("", b"")]))
    assert resp.status == 200
    assert len(install.stored_names()) == 1
    doc = json.loads(decrypt((install.config.store_dir / install.stored_names()[0]).read_bytes(),
                             [install.identities["triage"]]))
    assert doc["attachments"] == []
    assert doc["desks"] == ["triage"]
    with pytest.raises(AgeError):  # not encrypted to the other desk
        decrypt((install.config.store_dir / install.stored_names()[0]).read_bytes(),
                [install.identities["forensics"]])


# -- refusals, each in every language ---------------------------------------

Body = tuple[Any, dict[str, str]]  # what client.post() sends: data, headers


def _multipart(csrf: str, fields: list[tuple[str, str]],
               files: list[tuple[str, bytes]] | None = None) -> Body:
    return form([("csrf", csrf), *fields], files or []), {}


def _with_a_file(*extra: tuple[str, str]) -> Callable[[str], Body]:
    """The base form plus ``extra`` fields, then an attachment."""
    return lambda c: (form(base_fields(c) + list(extra), A_FILE), {})


def _raw(data: bytes, content_type: str) -> Body:
    return data, {"Content-Type": content_type}


def _file_before_token(csrf: str) -> Body:
    bad = form([], [("a.txt", b"data")])
    for name, value in base_fields(csrf):
        bad.add_field(name, value)
    return bad, {}


def _raw_fields(csrf: str, fields: list[tuple[bytes, bytes]]) -> Body:
    body = b"".join(
        b"--BOUND\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (n, v)
        for n, v in [(b"csrf", csrf.encode()), *fields]
    ) + b"--BOUND--\r\n"
    return _raw(body, "multipart/form-data; boundary=BOUND")


def _chunked(data: aiohttp.FormData) -> Body:
    """The form without a Content-Length, in 64 KiB pieces: refused while streaming."""
    payload = data()

    async def chunks() -> AsyncIterator[bytes]:
        buf = bytearray()
        await payload.write(_Collector(buf))
        for i in range(0, len(buf), 65536):
            yield bytes(buf[i:i + 65536])

    return chunks(), {"Content-Type": payload.content_type}


def _trickled(data: aiohttp.FormData, pause: float) -> Body:
    """Half the form, a pause longer than read_timeout_seconds, the rest."""
    payload = data()

    async def trickle() -> AsyncIterator[bytes]:
        buf = bytearray()
        await payload.write(_Collector(buf))
        yield bytes(buf[: len(buf) // 2])
        await asyncio.sleep(pause)
        yield bytes(buf[len(buf) // 2:])

    return trickle(), {"Content-Type": payload.content_type}


def _desk_after_file(csrf: str) -> Body:
    data = form(base_fields(csrf), [("a.txt", b"for triage only")])
    data.add_field("desks", "forensics")
    return data, {}


A_FILE = [("a.txt", b"x" * 1000)]
TWO_300K = [("a.bin", b"a" * 300_000), ("b.bin", b"b" * 300_000)]


@dataclass(frozen=True)
class Refusal:
    """A submission the server must refuse with ``status``, keeping nothing."""

    id: str
    body: Callable[[str], Body]  # the page's CSRF token -> what is posted
    status: int
    reason: str = ""  # a phrase the English page must contain
    settings: dict[str, Any] = field(default_factory=dict)  # for make_install
    cookie: bool = True  # False: the CSRF cookie is dropped before the post
    form_back: bool = False  # answered with the form again, answers kept


REFUSALS = [
    # CSRF: a wrong token, none, a file or a field before it, the token without its
    # cookie, the token twice.
    Refusal("csrf-wrong", lambda c: (form(base_fields("x" * 43), [("a.txt", b"data")]), {}),
            403),
    Refusal("csrf-missing", lambda c: (form(base_fields(c)[1:]), {}), 403),
    Refusal("csrf-after-a-file", _file_before_token, 403),
    Refusal("csrf-without-cookie", lambda c: (form(base_fields(c)), {}), 403, cookie=False),
    Refusal("csrf-twice", lambda c: (form([("csrf", c), *base_fields(c)]), {}), 403),
    Refusal("field-before-csrf", lambda c: (form([("category", "web"), *base_fields(c)]), {}),
            403),
    # Fields the form does not have, or values it cannot send.
    Refusal("unknown-field", _with_a_file(("unknown_field", "x")),
            400, "field this server does not know"),
    Refusal("duplicate-single-field", _with_a_file(("category", "spyware")),
            400, "could not be read"),
    Refusal("unknown-country", _with_a_file(("country", "Atlantis")),
            400, "not one of the choices"),
    Refusal("duplicate-multi-value", _with_a_file(("secondary", "spyware"),
                                                    ("secondary", "spyware")),
            400, "could not be read"),
    Refusal("bad-flag", _with_a_file(("consent_share", "maybe")),
            400, "not one of the choices"),
    Refusal("unknown-desk", _with_a_file(("desks", "no-such-desk")),
            400, "not one of the choices"),
    Refusal("control-character", _with_a_file(("description", "bell\x07")),
            400, "not valid UTF-8"),
    Refusal("invalid-utf8", lambda c: _raw_fields(c, [
        (b"category", b"spyware"), (b"desks", b"triage"),
        (b"description", b"caf\xe9 \xff\xfe")]), 400, "not valid UTF-8"),
    Refusal("no-category", lambda c: _multipart(c, [("desks", "triage")]), 400, form_back=True),
    Refusal("no-desk", lambda c: _multipart(c, [("category", "web")], [("a", b"1")]), 400,
            form_back=True),
    Refusal("desk-after-a-file", _desk_after_file, 400),
    # Bodies that are not our multipart form.
    Refusal("url-encoded", lambda c: ({"category": "spyware"}, {}), 400),
    Refusal("wrong-boundary", lambda c: _raw(
        b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz",
        "multipart/form-data; boundary=yy"), 400),
    Refusal("no-boundary", lambda c: _raw(b"garbage", "multipart/form-data"), 400),
    Refusal("endless-empty-parts", lambda c: (form(base_fields(c), [("", b"")] * 300), {}),
            400),
    # Limits.
    Refusal("field-too-large", lambda c: (form(base_fields(c, description="é" * 501)), {}),
            413, settings={"max_field_bytes": 1000}),
    # incident_date has its own, smaller bound (200 bytes).
    Refusal("incident-date-too-large",
            lambda c: (form(base_fields(c, incident_date="1" * 201)), {}),
            413, settings={"max_field_bytes": 1000}),
    Refusal("too-many-files",
            lambda c: (form(base_fields(c), [(f"f{i}.txt", b"x" * 10) for i in range(3)]), {}),
            413, settings={"max_files": 2}),
    Refusal("file-too-large-midstream", lambda c: (
        form(base_fields(c), [("ok.bin", b"a" * 200_000), ("big.bin", b"b" * 300_001)]), {}),
            413, settings={"max_file_bytes": 300_000}),
    # Declared too large: refused before reading.
    Refusal("declared-too-large", lambda c: (form(base_fields(c), TWO_300K), {}),
            413, settings={"max_submission_bytes": 500_000}),
    # Chunked, no Content-Length: refused while streaming.
    Refusal("streamed-too-large", lambda c: _chunked(form(base_fields(c), TWO_300K)),
            413, settings={"max_submission_bytes": 500_000}),
    Refusal("disk-quota", lambda c: (form(base_fields(c), [("a.bin", b"q" * 150_000)]), {}),
            503, settings={"disk_quota_bytes": 100_000}),
    Refusal("free-space-floor", lambda c: (form(base_fields(c), [("a", b"1")]), {}),
            503, settings={"min_free_bytes": 2**62}),
    Refusal("slow-client", lambda c: _trickled(form(base_fields(c), [("a.bin", b"s" * 200_000)]),
                                               pause=1.5),
            408, settings={"read_timeout_seconds": 0.5}),
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("case", REFUSALS, ids=[r.id for r in REFUSALS])
async def test_refused_with_a_translated_page_and_nothing_kept(
        tmp_path, make_client, lang, case: Refusal) -> None:
    inst = make_install(tmp_path, **case.settings)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    if not case.cookie:  # the right token from another site's form
        client.session.cookie_jar.clear()
    data, headers = case.body(csrf)
    resp = await client.post(f"/{lang}/submit", data=data, headers=headers)
    html = await assert_refused(resp, case.status, lang, form_back=case.form_back)
    if lang == "en" and case.reason:
        assert case.reason in html
    assert_nothing_stored(inst)


async def test_codename_reserve_is_refilled_after_the_upload_not_during_it(
        tmp_path, make_client) -> None:
    # The derivation that replaces a reserved codename (about a second of CPU) used
    # to start as soon as the upload took it, and shared the cores with that upload.
    # The codename is now taken once the whole report has arrived (an upload that is
    # dropped midway must not spend one): during the upload the reserve is untouched
    # and nothing derives; afterwards it is refilled.
    inst = make_install(tmp_path, codename_reserve=1)
    client = await make_client(inst)
    factory = client.server.app[SOURCES]
    await eventually(lambda: factory.reserved == 1)
    assert factory.reserved == 1
    csrf = await get_csrf(client)
    body = form(base_fields(csrf), [("a.bin", os.urandom(300_000))])()
    buf = bytearray()
    await body.write(_Collector(buf))
    during: list[tuple[int, int]] = []

    async def chunks():
        for i in range(0, len(buf), 65536):
            yield bytes(buf[i:i + 65536])
            if i == 2 * 65536:  # well inside the file: the codename was taken
                await asyncio.sleep(0.3)
                during.append((factory.reserved, factory._refilling))  # noqa: SLF001

    resp = await client.post("/en/submit", data=chunks(),
                             headers={"Content-Type": body.content_type})
    assert resp.status == 200
    assert during == [(1, 0)]
    await eventually(lambda: factory.reserved == 1 and not factory._refilling)  # noqa: SLF001
    assert factory.reserved == 1


class _Collector:
    def __init__(self, buf: bytearray) -> None:
        self.buf = buf

    async def write(self, data: bytes) -> None:
        self.buf += data


@pytest.mark.parametrize("lang", LANGS)
async def test_concurrent_upload_limit_gives_429(tmp_path, make_client, lang,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Every slot taken for longer than an upload may wait in the queue: 429.
    monkeypatch.setattr(upload, "QUEUE_SECONDS", 0.5)
    inst = make_install(tmp_path, max_concurrent_uploads=1)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    slots = client.server.app[UPLOADS]
    assert slots.try_acquire()  # another upload is in progress
    try:
        resp = await client.post(f"/{lang}/submit", data=form(base_fields(csrf)))
        await assert_refused(resp, 429, lang)
        assert resp.headers["Retry-After"]
    finally:
        slots.release()
    assert_nothing_stored(inst)


async def test_an_upload_waits_in_the_queue_for_a_slot(tmp_path, make_client) -> None:
    # A slot given back while an upload waits goes to it: received, not 429.
    inst = make_install(tmp_path, max_concurrent_uploads=1)
    client = await make_client(inst)
    csrf = await get_csrf(client)
    slots = client.server.app[UPLOADS]
    assert slots.try_acquire()  # another upload is in progress
    post = asyncio.ensure_future(client.post(
        "/en/submit", data=form(base_fields(csrf), [("a.bin", b"w" * 1000)])))
    await eventually(lambda: slots.waiting == 1)
    assert slots.waiting == 1
    assert not post.done()
    slots.release()
    resp = await post
    assert resp.status == 200
    assert slots.active == 0
    assert slots.waiting == 0
    assert len(inst.stored_names()) == 2


async def test_server_stays_up_after_refusals(client, install) -> None:
    csrf = await get_csrf(client)
    for _ in range(3):
        resp = await client.post("/en/submit", data=b"\xff" * 100,
                                 headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert resp.status == 400
    resp = await client.post("/en/submit", data=form(base_fields(csrf)))
    assert resp.status == 200
    assert len(install.stored_names()) == 1


async def test_client_disconnect_mid_upload_leaves_nothing(client, install, caplog) -> None:
    csrf = await get_csrf(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["amana_csrf"].value
    head = "".join(
        f'--B\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
        for n, v in [("csrf", csrf), ("category", "spyware"), ("desks", "triage")]
    ) + '--B\r\nContent-Disposition: form-data; name="files"; filename="x"\r\n\r\n'
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write((f"POST /en/submit HTTP/1.1\r\nHost: x\r\nCookie: amana_csrf={cookie}\r\n"
                  "Content-Type: multipart/form-data; boundary=B\r\n"
                  f"Content-Length: {len(head) + 10_000_000}\r\n\r\n{head}").encode())
    writer.write(b"z" * 1_000_000)
    await writer.drain()
    for _ in range(100):
        if install.incoming_names():
            break
        await asyncio.sleep(0.01)
    writer.close()
    for _ in range(300):
        if not install.incoming_names() and client.server.app[UPLOADS].active == 0:
            break
        await asyncio.sleep(0.01)
    assert_nothing_stored(install)
    assert "internal error" not in caplog.text  # a dropped connection is not a bug
    resp = await client.get("/en/")
    assert resp.status == 200
