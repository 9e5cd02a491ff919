"""The source's check-back: login, inbox, delete reply, follow-up, logout, and refusals.

Codenames come from real submissions through the form; replies are made with keys/
(age-encrypted amana-reply documents, stored through StaffStore.store_reply) exactly
as the staff side stores a desk's outbox. Argon2id runs at its real parameters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from typing import Any

import pytest

from intake_server.routes.inbox import FAILURE_SECONDS, MAX_REPLY_CIPHERTEXT, SESSION_COOKIE
from intake_server.staff.store import StaffStore, index_document
from intake_server.state import REPLIES, SESSIONS, STORAGE
from journalist_client.schema import parse_document
from keys.age import X25519Identity, decrypt, encrypt
from keys.codename import derive_source, generate_codename
from support.intake import LANGS, assert_security_headers, form, make_install
from support.source import (
    login,
    login_csrf,
    page_csrf,
    reply_document,
    source_row,
    store_reply,
    submit_report,
)

INBOX_TITLE = {"en": "Your replies", "ar": "الردود الموجهة إليك", "fr": "Vos réponses"}
UNREADABLE = {"en": "This reply could not be read.", "ar": "تعذّرت قراءة هذا الرد.",
              "fr": "Cette réponse n'a pas pu être lue."}
LOGIN_FAILED = {"en": "This codename did not open an inbox.",
                "ar": "لم يفتح هذا الاسم الرمزي أي صندوق رسائل.",
                "fr": "Ce nom de code n'ouvre aucune boîte de réception."}
BUSY = {"en": "Too many people are trying to log in right now.",
        "ar": "يحاول أشخاص كثيرون تسجيل الدخول الآن.",
        "fr": "Trop de personnes essaient de se connecter en ce moment."}
SENT = {"en": "Your message was received.", "ar": "وصلت رسالتك.",
        "fr": "Votre message a été reçu."}


def session_cookie(resp: Any) -> Any:
    morsel = resp.cookies.get(SESSION_COOKIE)
    assert morsel is not None
    return morsel


@pytest.mark.parametrize("lang", LANGS)
async def test_full_check_back(client: Any, install: Any, lang: str) -> None:
    codename = await submit_report(client, lang, desks=("forensics",))
    src = source_row(client)
    resp = await login(client, codename, lang)
    assert resp.status == 303
    assert resp.headers["Location"] == f"/{lang}/inbox"
    cookie = session_cookie(resp)
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]
    assert not cookie["max-age"]
    assert not cookie["expires"]

    # Two replies: the newest first, each with the desk's name in the page language.
    first = store_reply(client, src["reply_recipient"], "forensics",
                        reply_document("forensics", "Which phone model?"),
                        str(install.identities["forensics"].recipient()))
    second = store_reply(client, src["reply_recipient"], "triage",
                         reply_document("triage", "<script>alert(1)</script> شكرًا"))
    resp = await client.get(f"/{lang}/inbox")
    page = await resp.text()
    assert resp.status == 200
    assert INBOX_TITLE[lang] in page
    assert page.index("شكرًا") < page.index("Which phone model?")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert install.keyring.get("forensics").name(lang) in page
    assert install.keyring.get("triage").name(lang) in page

    # A follow-up with an attachment, to the desk the source chose.
    csrf = await page_csrf(client, lang)
    resp = await client.post(f"/{lang}/followup", allow_redirects=False, data=form(
        [("csrf", csrf), ("message", "It is an iPhone 13.\r\nسطر ثانٍ")],
        [("mvt-output.json", b'{"detected": true}' * 1000)]))
    assert resp.status == 303
    assert resp.headers["Location"] == f"/{lang}/inbox?done=sent"
    resp = await client.get(f"/{lang}/inbox?done=sent")
    assert SENT[lang] in await resp.text()

    storage = client.server.app[STORAGE]
    rows = storage.db.execute("SELECT id, type, source_id FROM submissions"
                              " ORDER BY type = 'followup'"
                              ).fetchall()
    assert [r[1] for r in rows] == ["report", "followup"]
    fid, _, source_id = rows[1]
    assert source_id == src["source_id"]
    # Addressed to the source's desk and to the desk that replied (it has the case).
    assert sorted(storage.desks_of(fid)) == ["forensics", "triage"]
    files = {f["kind"]: f["id"] for f in storage.files_of(fid)}
    assert sorted(files) == ["attachment", "report"]
    ident = install.identities["forensics"]
    doc_raw = decrypt(storage.store_path(files["report"]).read_bytes(), [ident])
    doc = parse_document(doc_raw, expected_type="followup")  # what the desk's client accepts
    assert doc["message"] == "It is an iPhone 13.\nسطر ثانٍ"
    assert doc["reply_recipient"] == src["reply_recipient"]
    assert doc["submission_id"] == fid
    assert doc["language"] == lang
    assert doc["attachments"][0]["name"] == "mvt-output.json"
    assert decrypt(storage.store_path(files["attachment"]).read_bytes(), [ident]) == \
        b'{"detected": true}' * 1000
    # The desk export says it is a follow-up.
    staff = StaffStore(storage)
    items = staff.pending("forensics", 0)
    index = json.loads(index_document("forensics", "0", "1", items,
                                      staff.statement("forensics", 0)))
    # (Both of today: their order is their random ids', not their order of arrival.)
    assert sorted(i["type"] for i in index["items"]) == ["followup", "report"]

    # Delete the first reply: row and file gone.
    path = client.server.app[REPLIES].reply_path(first)
    assert path.exists()
    resp = await client.post(f"/{lang}/inbox/delete", data={"csrf": csrf, "reply": first},
                             allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == f"/{lang}/inbox?done=deleted"
    assert not path.exists()
    assert [r["id"] for r in client.server.app[REPLIES].replies_for(src["reply_recipient"])] \
        == [second]
    assert "Which phone model?" not in await (await client.get(f"/{lang}/inbox")).text()

    # Log out: the session is gone from memory and the cookie cleared.
    resp = await client.post(f"/{lang}/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 200
    assert session_cookie(resp).value == ""
    assert len(client.server.app[SESSIONS]) == 0
    resp = await client.get(f"/{lang}/inbox", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith(f"/{lang}/login")


async def test_codename_is_tolerant_of_how_people_type_it(client: Any) -> None:
    codename = await submit_report(client)
    words = codename.split()
    typed = "\u200f " + "  ".join(w.upper() for w in words[:3]) + "\r\n" + \
        "\u200e\t".join(words[3:]) + "\n"
    resp = await login(client, typed)
    assert resp.status == 303
    assert resp.headers["Location"] == "/en/inbox"
    # Logged in already: the login page leads to the inbox.
    resp = await client.get("/fr/login", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/fr/inbox"


async def test_wrong_codenames_get_one_slow_answer(client: Any) -> None:
    await submit_report(client)
    bodies = []
    for text in (generate_codename(), "not a codename", ""):
        start = time.monotonic()
        resp = await login(client, text)
        elapsed = time.monotonic() - start
        assert resp.status == 403
        assert SESSION_COOKIE not in resp.cookies
        assert elapsed >= FAILURE_SECONDS
        body = await resp.text()
        assert LOGIN_FAILED["en"] in body
        bodies.append(re.sub(r'name="csrf" value="[^"]+"', "", body))
    # Same shape whatever was wrong: no hint whether the words or the source were.
    assert bodies[0] == bodies[1] == bodies[2]
    assert len(client.server.app[SESSIONS]) == 0


@pytest.mark.parametrize("lang", LANGS)
async def test_login_refusals_are_translated(make_client: Any, tmp_path: Any, lang: str) -> None:
    inst = make_install(tmp_path, logins_per_minute=1, login_burst=1)
    client = await make_client(inst)
    csrf = await login_csrf(client, lang)
    # No or wrong CSRF token: refused before any work.
    resp = await client.post(f"/{lang}/login", data={"csrf": "x" * 43, "codename": "a"})
    assert resp.status == 403
    resp = await client.post(f"/{lang}/login", data={"codename": "a"})
    assert resp.status == 400
    resp = await client.post(f"/{lang}/login", data={"csrf": csrf, "codename": "a", "x": "1"})
    assert resp.status == 400
    resp = await client.post(f"/{lang}/login", data=form([("csrf", csrf), ("codename", "a")]))
    assert resp.status == 400  # multipart is never parsed here (it could spool files)
    resp = await client.post(f"/{lang}/login", data=b"csrf=%ff&codename=a",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 400

    async def chunked() -> Any:
        yield f"csrf={csrf}&codename=a".encode()

    resp = await client.post(f"/{lang}/login", data=chunked(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 413  # no declared length: not a browser's small form
    resp = await client.post(f"/{lang}/login", data=b"codename=" + b"a" * 9000,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 413
    # The global bucket: one attempt, then "try again later" in the page language.
    resp = await client.post(f"/{lang}/login", data={"csrf": csrf, "codename": "a b"})
    assert resp.status == 403
    resp = await client.post(f"/{lang}/login", data={"csrf": csrf, "codename": "a b"})
    assert resp.status == 429
    assert BUSY[lang] in await resp.text()
    assert resp.headers["Retry-After"] == "120"


async def test_login_pool_is_bounded(make_client: Any, tmp_path: Any) -> None:
    inst = make_install(tmp_path, max_concurrent_logins=1, max_waiting_logins=0)
    client = await make_client(inst)
    csrf = await login_csrf(client)
    attempts = [client.post("/en/login", data={"csrf": csrf, "codename": generate_codename()})
                for _ in range(3)]
    statuses = sorted(r.status for r in await asyncio.gather(*attempts))
    # One derives (and fails: nobody's codename); the others are told to come back.
    assert statuses == [403, 429, 429]


async def test_pages_need_a_session(client: Any) -> None:
    for lang in LANGS:
        resp = await client.get(f"/{lang}/inbox", allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == f"/{lang}/login"
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: "made-up"})
    resp = await client.get("/ar/inbox", allow_redirects=False)
    assert resp.headers["Location"] == "/ar/login?ended=1"
    resp = await client.get("/ar/login?ended=1")
    assert "سُجِّل خروجك، لأن الجلسة" in await resp.text()
    for path in ("/en/inbox/delete", "/en/followup"):
        resp = await client.post(path, data={"csrf": "x"}, allow_redirects=False)
        assert resp.status == 303
    # Logging out without a session is harmless.
    resp = await client.post("/en/logout", data={"csrf": "x"})
    assert resp.status == 200


async def test_session_forms_refuse_bad_csrf_and_input(client: Any) -> None:
    codename = await submit_report(client)
    assert (await login(client, codename)).status == 303
    src = source_row(client)
    reply = store_reply(client, src["reply_recipient"], "triage", reply_document("triage", "hi"))
    csrf = await page_csrf(client)
    # Delete: CSRF, id format, someone else's reply.
    resp = await client.post("/en/inbox/delete", data={"csrf": "no", "reply": reply})
    assert resp.status == 403
    resp = await client.post("/en/inbox/delete", data={"csrf": csrf, "reply": "../x"})
    assert resp.status == 400
    other = store_reply(client, str(X25519Identity.generate().recipient()), "triage",
                        reply_document("triage", "not yours"))
    resp = await client.post("/en/inbox/delete", data={"csrf": csrf, "reply": other})
    assert resp.status == 404
    assert client.server.app[REPLIES].reply_path(other).exists()
    # Follow-up: CSRF first and right, known fields only, not empty.
    storage = client.server.app[STORAGE]
    before = len(storage.submissions())
    cases = [
        ([("message", "x"), ("csrf", csrf)], (), 403),
        ([("csrf", "wrong")], (), 403),
        ([("csrf", csrf), ("category", "spyware")], (), 400),
        ([("csrf", csrf), ("message", "a"), ("message", "b")], (), 400),
        ([("csrf", csrf), ("message", "  \n")], (), 400),
        ([("csrf", csrf), ("message", "bad \x01")], (), 400),
        ([], [("f.bin", b"x")], 403),
    ]
    for fields, files, status in cases:
        resp = await client.post("/en/followup", data=form(fields, files))
        assert resp.status == status, (fields, await resp.text())
    resp = await client.post("/en/followup", data={"csrf": csrf, "message": "x"})
    assert resp.status == 400  # not multipart
    assert len(storage.submissions()) == before
    assert [p.name for p in storage.incoming_dir.iterdir()] == []
    # Logout needs the session's CSRF token too.
    resp = await client.post("/en/logout", data={"csrf": "nope"})
    assert resp.status == 403
    assert len(client.server.app[SESSIONS]) == 1


async def test_malformed_replies_are_shown_as_unreadable(client: Any, install: Any) -> None:
    codename = await submit_report(client)
    src = source_row(client)
    rr = src["reply_recipient"]
    bad = [
        reply_document("forensics", "desk in the document differs from the row"),
        b"not json",
        b'{"format": "amana-reply", "format": "amana-reply", "version": 1}',
        json.dumps({"format": "amana-reply", "version": True, "desk": "triage",
                    "day": "2026-11-28", "body": "x"}).encode(),
        json.dumps({"format": "amana-reply", "version": 1, "desk": "triage",
                    "day": "2026-11-28", "body": "x", "extra": 1}).encode(),
        b"\xff\xfe",
    ]
    for doc in bad:
        store_reply(client, rr, "triage", doc)
    # Encrypted to someone else entirely, and a file that is not age at all.
    elsewhere = encrypt(reply_document("triage", "x"), [X25519Identity.generate().recipient()])
    rid = client.server.app[REPLIES].store_reply(
        reply_recipient=rr, desk="triage", write=lambda p: p.write_bytes(elsewhere))
    rid2 = client.server.app[REPLIES].store_reply(
        reply_recipient=rr, desk="triage", write=lambda p: p.write_bytes(b"garbage"))
    # Larger than any reply may be: it used to make the whole inbox a 500.
    rid3 = client.server.app[REPLIES].store_reply(
        reply_recipient=rr, desk="triage",
        write=lambda p: p.write_bytes(b"\0" * (MAX_REPLY_CIPHERTEXT + 1)))
    assert (await login(client, codename)).status == 303
    for lang in LANGS:
        resp = await client.get(f"/{lang}/inbox")
        assert resp.status == 200
        assert (await resp.text()).count(UNREADABLE[lang]) == len(bad) + 3
    assert rid
    assert rid2
    assert rid3


async def test_followup_goes_to_the_source_desks_after_the_report_is_gone(
        client: Any, install: Any) -> None:
    codename = await submit_report(client, desks=("forensics",))
    storage = client.server.app[STORAGE]
    staff = StaffStore(storage)
    (sid,) = [s["id"] for s in storage.submissions()]
    assert staff.acknowledge("forensics", [sid]) == (1, 1)  # imported, acked, deleted
    assert storage.submissions() == []
    assert (await login(client, codename)).status == 303
    csrf = await page_csrf(client)
    resp = await client.post("/en/followup", data=form([("csrf", csrf), ("message", "more")]))
    assert resp.status == 200
    (follow,) = storage.submissions()
    assert follow["type"] == "followup"
    assert storage.desks_of(follow["id"]) == ["forensics"]


async def test_no_response_or_cookie_carries_codename_or_keys(client: Any) -> None:
    codename = await submit_report(client)
    keys = derive_source(codename)
    secrets_ = [codename, keys.source_id, str(keys.reply_identity),
                str(keys.reply_identity.recipient())]
    seen: list[bytes] = []

    async def fetch(method: str, path: str, **kw: Any) -> Any:
        resp = await client.request(method, path, allow_redirects=False, **kw)
        seen.append(await resp.read())
        seen.append("\n".join(f"{k}: {v}" for k, v in resp.headers.items()).encode())
        return resp

    csrf = await login_csrf(client)
    await fetch("POST", "/en/login", data={"csrf": csrf, "codename": codename.upper()})
    store_reply(client, str(keys.reply_identity.recipient()), "triage",
                reply_document("triage", "a reply"))
    await fetch("GET", "/en/inbox")
    page_token = await page_csrf(client)
    await fetch("POST", "/en/followup", data=form([("csrf", page_token), ("message", "m")]))
    await fetch("GET", "/en/inbox?done=sent")
    await fetch("GET", "/ar/inbox")
    await fetch("GET", "/en/login")
    await fetch("POST", "/en/logout", data={"csrf": page_token})
    for cookie in client.session.cookie_jar:
        seen.append(cookie.value.encode())
    blob = b"\n".join(seen)
    for secret in secrets_:
        for form_ in (secret, secret.upper(), secret.replace(" ", "+"),
                      secret.replace(" ", "%20")):
            assert form_.encode() not in blob


async def test_data_dir_keeps_no_plaintext_of_replies_or_followups(
        client: Any, install: Any) -> None:
    canary = "CANARY-reply-7f3a9c"
    codename = await submit_report(client)
    src = source_row(client)
    store_reply(client, src["reply_recipient"], "triage",
                reply_document("triage", f"{canary} reply body"))
    assert (await login(client, codename)).status == 303
    assert canary in await (await client.get("/en/inbox")).text()
    csrf = await page_csrf(client)
    resp = await client.post("/en/followup", data=form(
        [("csrf", csrf), ("message", f"{canary} follow-up")],
        [(f"{canary}.txt", canary.encode() * 100)]))
    assert resp.status == 200
    for path in install.root.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert canary.encode() not in blob, path
            assert codename.encode() not in blob, path


async def test_sources_survive_acks_and_expire_with_retention(client: Any) -> None:
    codename = await submit_report(client)
    storage = client.server.app[STORAGE]
    staff = StaffStore(storage)
    src = source_row(client)
    reply = store_reply(client, src["reply_recipient"], "triage", reply_document("triage", "x"))
    today = dt.datetime.now(dt.UTC).date()
    assert src["last_seen_day"] == today.isoformat()
    # Not idle yet: nothing of the source goes.
    staff.expire(today + dt.timedelta(days=29), 30)
    assert storage.find_source(src["source_id"]) == src["reply_recipient"]
    assert (await login(client, codename)).status == 303
    # Idle for the whole retention period: the source and its replies go.
    removed = staff.expire(today + dt.timedelta(days=30), 30)
    assert removed["replies"] == 1
    assert storage.find_source(src["source_id"]) is None
    assert storage.source_desks(src["source_id"]) == []
    assert not client.server.app[REPLIES].reply_path(reply).exists()


async def test_login_updates_last_seen_day(client: Any) -> None:
    codename = await submit_report(client)
    storage = client.server.app[STORAGE]
    storage.db.execute("UPDATE sources SET last_seen_day = '2020-01-01'")
    assert (await login(client, codename)).status == 303
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert source_row(client)["last_seen_day"] == today


async def test_old_data_dir_gains_sources_and_types(install: Any) -> None:
    import sqlite3

    from intake_server.storage import Storage

    install.config.data_dir.mkdir()
    with sqlite3.connect(install.config.db_path) as conn:
        conn.execute("CREATE TABLE submissions (id TEXT PRIMARY KEY, day TEXT,"
                     " source_id TEXT, reply_recipient TEXT)")
        conn.execute("CREATE TABLE submission_desks (submission_id TEXT, desk_id TEXT,"
                     " PRIMARY KEY (submission_id, desk_id))")
        conn.execute("CREATE TABLE files (id TEXT PRIMARY KEY, submission_id TEXT,"
                     " kind TEXT, ciphertext_size INTEGER)")
        conn.execute("INSERT INTO submissions VALUES ('a' , '2026-11-01', 'sid', 'age1x')")
        conn.execute("INSERT INTO submission_desks VALUES ('a', 'forensics')")
    storage = Storage(install.config)
    storage.open()
    try:
        assert storage.submissions()[0]["type"] == "report"
        assert storage.find_source("sid") == "age1x"
        assert storage.source_desks("sid") == ["forensics"]
    finally:
        storage.close()


@pytest.mark.parametrize("lang", LANGS)
async def test_source_pages_send_security_headers_and_no_script(client: Any, lang: str) -> None:
    codename = await submit_report(client, lang)
    responses = [await client.get(f"/{lang}/inbox", allow_redirects=False),
                 await client.get(f"/{lang}/login")]
    csrf = await login_csrf(client, lang)
    responses.append(await client.post(f"/{lang}/login", allow_redirects=False,
                                       data={"csrf": csrf, "codename": codename}))
    responses.append(await client.get(f"/{lang}/inbox"))
    token = await page_csrf(client, lang)
    responses.append(await client.post(f"/{lang}/inbox/delete", data={"csrf": token,
                                                                       "reply": "0" * 32}))
    responses.append(await client.post(f"/{lang}/logout", data={"csrf": token}))
    direction = "rtl" if lang == "ar" else "ltr"
    for resp in responses:
        assert_security_headers(resp)
        html = await resp.text()
        assert "<script" not in html.lower()
        assert not re.search(r'(?:src|href|action)="(?:https?:)?//', html)
        if resp.status != 303:
            assert f'<html lang="{lang}" dir="{direction}">' in html
    assert [r.status for r in responses] == [303, 200, 303, 200, 404, 200]
    login_page = await responses[1].text()
    assert f'action="/{lang}/login"' in login_page
    assert login_page.index('name="csrf"') < login_page.index('name="codename"')
    inbox_page = await responses[3].text()
    # The follow-up form's token comes first: the server refuses any other order.
    assert inbox_page.index('name="csrf"') < inbox_page.index('name="message"') \
        < inbox_page.index('name="files"')


async def test_a_new_login_ends_the_previous_session(client: Any) -> None:
    codename = await submit_report(client)
    csrf = await login_csrf(client)
    for _ in range(2):
        resp = await client.post("/en/login", data={"csrf": csrf, "codename": codename},
                                 allow_redirects=False)
        assert resp.status == 303
    assert len(client.server.app[SESSIONS]) == 1


async def test_reading_a_reply_does_not_date_it(client: Any) -> None:
    # Under relatime the first read after the day-normalised atime would record the
    # moment the source opened the inbox; replies are read with O_NOATIME.
    import os

    codename = await submit_report(client)
    src = source_row(client)
    reply_id = store_reply(client, src["reply_recipient"], "triage",
                           reply_document("triage", "Which phone model?"))
    path = client.server.app[REPLIES].reply_path(reply_id)
    before = os.stat(path).st_atime
    assert before % 86400 == 0  # midnight UTC of the day
    assert (await login(client, codename)).status == 303
    resp = await client.get("/en/inbox")
    assert "Which phone model?" in await resp.text()
    assert os.stat(path).st_atime == before
