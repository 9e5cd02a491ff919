"""Real browser, JavaScript off, in Arabic: the whole check-back as a source lives it.

Submit → codename page → login (the codename typed the way people type it) → read a
desk's reply (made with keys/) → send a follow-up with an attachment → delete the
reply → log out. Debian's Chromium through Playwright, no network but 127.0.0.1.
"""

from __future__ import annotations

import json

from keys.age import decrypt, parse_identity_file
from support.checkback import files_of, followups, reply_file, reply_recipients, store_reply

DESK_AR = "مكتب الفرز في التحالف (تجريبي)"



def test_check_back_in_arabic_without_javascript(server, new_page, tmp_path) -> None:
    page = new_page("ar")
    context = page.context
    evidence = tmp_path / "لقطة-شاشة.png"
    evidence.write_bytes(b"\x89PNG fake evidence " * 5000)
    page.goto(f"{server.url}/ar/submit")
    page.check('input[name="category"][value="spyware"]')
    page.fill("#description", "هاتفي يتصرف بغرابة")
    page.click('button:has-text("أرسل البلاغ مشفَّرًا")')
    page.wait_for_load_state()
    words = page.locator(".codename span").all_inner_texts()
    assert len(words) == 7

    (recipient,) = reply_recipients(server.demo_dir)
    reply_id = store_reply(server.demo_dir, recipient, "triage",
                           "شكرًا لبلاغك. ما طراز هاتفك؟ <b>لا HTML</b>")

    # From the codename page to the login form by its link.
    page.click('a:has-text("اطّلع على الردود")')
    assert page.url.endswith("/ar/login")
    assert page.locator("html").get_attribute("dir") == "rtl"
    # As someone copies it from paper: capitals, two lines, a stray RTL mark.
    typed = " ".join(w.upper() for w in words[:4]) + "\n\u200f" + "  ".join(words[4:])
    page.fill("#codename", typed)
    page.click('button:has-text("سجّل الدخول")')
    page.wait_for_load_state()
    assert page.url.endswith("/ar/inbox")
    assert page.locator("h1").inner_text() == "الردود الموجهة إليك"
    body = page.locator(".reply-body").inner_text()
    assert body == "شكرًا لبلاغك. ما طراز هاتفك؟ <b>لا HTML</b>"  # shown as text
    assert DESK_AR in page.locator(".reply h2").inner_text()
    cookies = context.cookies()
    session = [c for c in cookies if c["name"] == "amana_session"]
    assert len(session) == 1
    assert session[0]["httpOnly"]
    assert session[0]["sameSite"] == "Strict"
    assert not session[0]["secure"]
    assert not any(w in session[0]["value"] for w in words)

    page.fill("#message", "هاتفي آيفون 13. أرفقت لقطة الشاشة.")
    page.set_input_files("#files", str(evidence))
    page.click('button:has-text("أرسل الرسالة مشفَّرة")')
    page.wait_for_load_state()
    assert "وصلت رسالتك" in page.content()

    page.click('button:has-text("احذف هذا الرد")')
    page.wait_for_load_state()
    assert "حُذف الرد من الخادم" in page.content()
    assert page.locator(".reply").count() == 0
    assert not reply_file(server.demo_dir, reply_id).exists()

    page.click('button:has-text("سجّل الخروج")')
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "سُجِّل خروجك"
    assert not [c for c in context.cookies() if c["name"] == "amana_session"]
    page.goto(f"{server.url}/ar/inbox")
    assert page.url.endswith("/ar/login")
    assert all(u.startswith(server.url) for u in page.requests), page.requests

    # The follow-up is what the desk gets: the message and the file, encrypted.
    identities = parse_identity_file(server.identity("triage").read_text())
    (fid,) = followups(server.demo_dir)
    files = files_of(server.demo_dir, fid)
    doc = json.loads(decrypt(files["report"][0].read_bytes(), identities))
    assert doc["schema"] == "amana.followup"
    assert doc["language"] == "ar"
    assert doc["message"] == "هاتفي آيفون 13. أرفقت لقطة الشاشة."
    assert doc["reply_recipient"] == recipient
    assert [a["name"] for a in doc["attachments"]] == [evidence.name]
    assert decrypt(files["attachment"][0].read_bytes(), identities) == evidence.read_bytes()
