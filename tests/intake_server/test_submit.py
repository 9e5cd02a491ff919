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

import pytest
from intake_helpers import (
    LANGS,
    assert_nothing_stored,
    base_fields,
    eventually,
    form,
    get_csrf,
    make_install,
)

from intake_server.state import SOURCES, UPLOADS
from keys.age import AgeError, decrypt

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


async def assert_refused(resp, status: int, lang: str) -> str:
    assert resp.status == status
    html = await resp.text()
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
    reports = [json.loads(p) for p in plain.values() if p.startswith(b"{")]
    assert len(reports) == 1
    doc = reports[0]
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
    # The codename is shown once and stored nowhere.
    for path in install.data_dir.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert codename.encode() not in blob
            assert words[3].encode() not in blob
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

@pytest.mark.parametrize("lang", LANGS)
async def test_missing_or_wrong_csrf_is_refused(client, install, lang) -> None:
    csrf = await get_csrf(client, lang)
    resp = await client.post(f"/{lang}/submit",
                             data=form(base_fields("x" * 43), [("a.txt", b"data")]))
    await assert_refused(resp, 403, lang)
    resp = await client.post(f"/{lang}/submit", data=form(base_fields(csrf)[1:]))
    await assert_refused(resp, 403, lang)
    # A file before the token: refused before a byte is stored.
    bad = form([], [("a.txt", b"data")])
    for name, value in base_fields(csrf):
        bad.add_field(name, value)
    resp = await client.post(f"/{lang}/submit", data=bad)
    await assert_refused(resp, 403, lang)
    # The right token without the cookie (another site's form): refused.
    client.session.cookie_jar.clear()
    resp = await client.post(f"/{lang}/submit", data=form(base_fields(csrf)))
    await assert_refused(resp, 403, lang)
    assert_nothing_stored(install)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("fields", "reason"), [
    ([("unknown_field", "x")], "field this server does not know"),
    ([("category", "spyware")], "could not be read"),  # duplicate single-valued field
    ([("country", "Atlantis")], "not one of the choices"),
    ([("secondary", "spyware"), ("secondary", "spyware")], "could not be read"),
    ([("consent_share", "maybe")], "not one of the choices"),
    ([("desks", "no-such-desk")], "not one of the choices"),
    ([("description", "bell\x07")], "not valid UTF-8"),
])
async def test_bad_fields_are_refused(client, install, lang, fields, reason) -> None:
    csrf = await get_csrf(client, lang)
    resp = await client.post(f"/{lang}/submit",
                             data=form(base_fields(csrf) + fields, [("a.txt", b"x" * 1000)]))
    html = await assert_refused(resp, 400, lang)
    if lang == "en":
        assert reason in html
    assert_nothing_stored(install)


@pytest.mark.parametrize("lang", LANGS)
async def test_invalid_utf8_is_refused(client, install, lang) -> None:
    csrf = await get_csrf(client, lang)
    body = b"".join(
        b"--BOUND\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (n, v)
        for n, v in [(b"csrf", csrf.encode()), (b"category", b"spyware"),
                     (b"desks", b"triage"), (b"description", b"caf\xe9 \xff\xfe")]
    ) + b"--BOUND--\r\n"
    resp = await client.post(f"/{lang}/submit", data=body,
                             headers={"Content-Type": "multipart/form-data; boundary=BOUND"})
    html = await assert_refused(resp, 400, lang)
    if lang == "en":
        assert "not valid UTF-8" in html
    assert_nothing_stored(install)


@pytest.mark.parametrize("lang", LANGS)
async def test_missing_category_or_desks_is_refused(client, install, lang) -> None:
    csrf = await get_csrf(client, lang)
    resp = await client.post(f"/{lang}/submit", data=form([("csrf", csrf), ("desks", "triage")]))
    await assert_refused(resp, 400, lang)
    resp = await client.post(f"/{lang}/submit",
                             data=form([("csrf", csrf), ("category", "web")], [("a", b"1")]))
    await assert_refused(resp, 400, lang)
    assert_nothing_stored(install)


@pytest.mark.parametrize("lang", LANGS)
async def test_malformed_or_wrong_body_is_refused(client, install, lang) -> None:
    await get_csrf(client, lang)
    resp = await client.post(f"/{lang}/submit", data={"category": "spyware"})
    await assert_refused(resp, 400, lang)
    resp = await client.post(
        f"/{lang}/submit", data=b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz",
        headers={"Content-Type": "multipart/form-data; boundary=yy"})
    assert resp.status == 400
    resp = await client.post(f"/{lang}/submit", data=b"garbage",
                             headers={"Content-Type": "multipart/form-data"})
    await assert_refused(resp, 400, lang)
    assert_nothing_stored(install)


@pytest.mark.parametrize("lang", LANGS)
async def test_oversize_field_is_refused(tmp_path, make_client, lang) -> None:
    inst = make_install(tmp_path, max_field_bytes=1000)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    resp = await client.post(f"/{lang}/submit",
                             data=form(base_fields(csrf, description="é" * 501)))
    await assert_refused(resp, 413, lang)
    # incident_date has its own, smaller bound (200 bytes).
    resp = await client.post(f"/{lang}/submit",
                             data=form(base_fields(csrf, incident_date="1" * 201)))
    await assert_refused(resp, 413, lang)
    assert_nothing_stored(inst)


@pytest.mark.parametrize("lang", LANGS)
async def test_too_many_files_is_refused(tmp_path, make_client, lang) -> None:
    inst = make_install(tmp_path, max_files=2)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    files = [(f"f{i}.txt", b"x" * 10) for i in range(3)]
    resp = await client.post(f"/{lang}/submit", data=form(base_fields(csrf), files))
    await assert_refused(resp, 413, lang)
    assert_nothing_stored(inst)


@pytest.mark.parametrize("lang", LANGS)
async def test_file_too_large_is_refused_midstream(tmp_path, make_client, lang) -> None:
    inst = make_install(tmp_path, max_file_bytes=300_000)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    files = [("ok.bin", b"a" * 200_000), ("big.bin", b"b" * 300_001)]
    resp = await client.post(f"/{lang}/submit", data=form(base_fields(csrf), files))
    await assert_refused(resp, 413, lang)
    assert_nothing_stored(inst)


@pytest.mark.parametrize("lang", LANGS)
async def test_submission_too_large_is_refused(tmp_path, make_client, lang) -> None:
    inst = make_install(tmp_path, max_submission_bytes=500_000)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    # Declared too large: refused before reading.
    files = [("a.bin", b"a" * 300_000), ("b.bin", b"b" * 300_000)]
    resp = await client.post(f"/{lang}/submit", data=form(base_fields(csrf), files))
    await assert_refused(resp, 413, lang)
    # Chunked, no Content-Length: refused while streaming.
    body = form(base_fields(csrf), files)()

    async def chunks():
        for part in [body]:
            buf = bytearray()
            await part.write(_Collector(buf))
            for i in range(0, len(buf), 65536):
                yield bytes(buf[i:i + 65536])

    resp = await client.post(f"/{lang}/submit", data=chunks(),
                             headers={"Content-Type": body.content_type})
    await assert_refused(resp, 413, lang)
    assert_nothing_stored(inst)


async def test_codename_reserve_is_refilled_after_the_upload_not_during_it(
        tmp_path, make_client) -> None:
    # The derivation that replaces a reserved codename (about a second of CPU) used
    # to start as soon as the upload took it, and shared the cores with that upload.
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
    assert during == [(0, 0)]
    await eventually(lambda: factory.reserved == 1)
    assert factory.reserved == 1


class _Collector:
    def __init__(self, buf: bytearray) -> None:
        self.buf = buf

    async def write(self, data: bytes) -> None:
        self.buf += data


@pytest.mark.parametrize("lang", LANGS)
async def test_concurrent_upload_limit_gives_429(tmp_path, make_client, lang) -> None:
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


@pytest.mark.parametrize("lang", LANGS)
async def test_disk_quota_gives_503(tmp_path, make_client, lang) -> None:
    inst = make_install(tmp_path, disk_quota_bytes=100_000)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    resp = await client.post(f"/{lang}/submit",
                             data=form(base_fields(csrf), [("a.bin", b"q" * 150_000)]))
    await assert_refused(resp, 503, lang)
    assert_nothing_stored(inst)


@pytest.mark.parametrize("lang", LANGS)
async def test_free_space_floor_gives_503(tmp_path, make_client, lang) -> None:
    inst = make_install(tmp_path, min_free_bytes=2**62)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    resp = await client.post(f"/{lang}/submit", data=form(base_fields(csrf), [("a", b"1")]))
    await assert_refused(resp, 503, lang)
    assert_nothing_stored(inst)


@pytest.mark.parametrize("lang", LANGS)
async def test_slow_client_is_dropped_with_408(tmp_path, make_client, lang) -> None:
    inst = make_install(tmp_path, read_timeout_seconds=0.5)
    client = await make_client(inst)
    csrf = await get_csrf(client, lang)
    body = form(base_fields(csrf), [("a.bin", b"s" * 200_000)])()
    buf = bytearray()
    await body.write(_Collector(buf))

    async def trickle():
        yield bytes(buf[: len(buf) // 2])
        await asyncio.sleep(1.5)  # longer than read_timeout_seconds
        yield bytes(buf[len(buf) // 2:])

    resp = await client.post(f"/{lang}/submit", data=trickle(),
                             headers={"Content-Type": body.content_type})
    await assert_refused(resp, 408, lang)
    assert_nothing_stored(inst)


async def test_server_stays_up_after_refusals(client, install) -> None:
    csrf = await get_csrf(client)
    for _ in range(3):
        resp = await client.post("/en/submit", data=b"\xff" * 100,
                                 headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert resp.status == 400
    resp = await client.post("/en/submit", data=form(base_fields(csrf)))
    assert resp.status == 200
    assert len(install.stored_names()) == 1


async def test_desk_added_after_a_file_is_refused(client, install) -> None:
    csrf = await get_csrf(client)
    data = form(base_fields(csrf), [("a.txt", b"for triage only")])
    data.add_field("desks", "forensics")
    resp = await client.post("/en/submit", data=data)
    await assert_refused(resp, 400, "en")
    assert_nothing_stored(install)


async def test_endless_empty_parts_are_refused(client, install) -> None:
    csrf = await get_csrf(client)
    data = form(base_fields(csrf), [("", b"")] * 300)
    resp = await client.post("/en/submit", data=data)
    await assert_refused(resp, 400, "en")
    assert_nothing_stored(install)


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
