"""Real browser, JavaScript off: Debian's Chromium driven by Playwright.

A full submission with two attachments in English, Arabic and French, checked
by decrypting what was stored; and a screenshot of the Arabic form checked for
right-to-left layout, both from element boxes and from the pixels themselves.
Chromium gets no network but 127.0.0.1 (and all its background services off).
"""

from __future__ import annotations

import os
import re
import struct
import zlib

import pytest

from keys.age import decrypt, parse_identity_file
from support.server_process import report_document

SUBMIT_LABEL = {"en": "Send encrypted report", "ar": "أرسل البلاغ مشفَّرًا",
                "fr": "Envoyer le signalement chiffré"}
RECEIVED = {"en": "Your report was received", "ar": "وصل بلاغك",
            "fr": "Votre signalement a été reçu"}



@pytest.fixture
def page(new_page):
    return new_page("en-US")


def _decrypt_all(server, desk: str) -> dict[str, bytes]:
    identities = parse_identity_file(server.identity(desk).read_text())
    return {p.name.removesuffix(".age"): decrypt(p.read_bytes(), identities)
            for p in server.store_dir.iterdir()}


@pytest.mark.parametrize("lang", ["en", "ar", "fr"])
def test_full_submission_without_javascript(server, page, tmp_path, lang) -> None:
    a = tmp_path / f"screenshot-{lang}.png"
    a.write_bytes(os.urandom(90_000))
    b = tmp_path / "message.eml"
    b.write_bytes("From: x@example\n\nرسالة مشبوهة\n".encode() * 200)

    page.goto(f"{server.url}/")
    page.click(f'a[href="/{lang}/"]')
    page.click(f'a[href="/{lang}/submit"]')
    assert page.url.endswith(f"/{lang}/submit")
    page.check('input[name="category"][value="msg"]')
    page.click("summary")
    page.check('input[name="secondary"][value="acct"]')
    page.select_option("#country", "EG")
    page.fill("#incident_date", "2026-10")
    page.fill("#description", f"browser test {lang} — وصف")
    page.fill("#links", "https://phish.example/login")
    page.check('input[name="target"][value="self"]')
    page.select_option("#profession", "journalist")
    page.check('input[name="platforms"][value="android"]')
    page.check('input[name="desks"][value="forensics"]')
    page.check('input[name="consent_share"]')
    page.set_input_files("#files", [str(a), str(b)])
    page.click(f'button:has-text("{SUBMIT_LABEL[lang]}")')
    page.wait_for_load_state()

    assert RECEIVED[lang] in page.content()
    words = page.locator(".codename span").all_inner_texts()
    assert len(words) == 7
    assert all(re.fullmatch(r"[a-z-]+", w) for w in words)
    assert all(u.startswith(server.url) for u in page.requests), page.requests

    plain = _decrypt_all(server, "forensics")
    assert plain == _decrypt_all(server, "triage")
    doc = report_document(plain)
    assert doc["language"] == lang
    assert doc["answers"]["description"] == f"browser test {lang} — وصف"
    assert doc["answers"]["secondary_categories"] == ["acct"]
    assert doc["desks"] == ["triage", "forensics"]
    got = {att["name"]: plain[att["file_id"]] for att in doc["attachments"]}
    assert got == {a.name: a.read_bytes(), b.name: b.read_bytes()}


def _png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            assert color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            ul = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + left) & 0xFF
            elif f == 2:
                line[i] = (line[i] + up) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif f == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


def _dark_columns(rows: list[bytes], bpp: int, y0: int, y1: int, x0: int, x1: int) -> list[int]:
    cols = []
    for x in range(x0, x1):
        for y in range(y0, y1):
            px = rows[y][x * bpp:x * bpp + 3]
            if sum(px) < 300:
                cols.append(x)
                break
    return cols


def test_arabic_form_is_right_to_left(server, page, tmp_path) -> None:
    page.goto(f"{server.url}/ar/submit")
    assert page.get_attribute("html", "dir") == "rtl"
    form_box = page.locator("form").bounding_box()
    assert form_box
    left, right = form_box["x"], form_box["x"] + form_box["width"]
    # Boxes that shrink to their content must hug the right edge of the form.
    for selector in ("legend", "button[type=submit]"):
        box = page.locator(selector).first.bounding_box()
        assert box, selector
        gap_right = right - (box["x"] + box["width"])
        gap_left = box["x"] - left
        assert gap_right < 40 < gap_left, (selector, box, form_box)
    radio = page.locator('input[name="category"]').first.bounding_box()
    label = page.locator('input[name="category"] >> xpath=..').first.bounding_box()
    assert radio
    assert label
    # The radio button sits at the start (the right) of its label.
    assert radio["x"] > label["x"] + label["width"] / 2

    shot = tmp_path / "ar-submit.png"
    page.screenshot(path=str(shot), full_page=False)
    width, bpp, rows = _png_pixels(shot.read_bytes())
    # Where the ink is: the text of a legend and of a full-width label (whose box
    # spans the form, so only its pixels tell where the text starts) sits at the right.
    for selector in ("legend", "label[for=country]", "label[for=description]"):
        box = page.locator(selector).first.bounding_box()
        assert box, selector
        y0, y1 = int(box["y"]) + 2, int(box["y"] + box["height"]) - 2
        cols = _dark_columns(rows, bpp, y0, y1, int(left), int(right))
        assert cols, f"no text pixels in {selector}"
        assert right - max(cols) < 60, (selector, max(cols), right)
        assert min(cols) - left > (right - left) / 3, (selector, min(cols), left)


def test_control_english_form_is_left_to_right(server, page) -> None:
    # The same measurement on the English form must come out mirrored, or the
    # Arabic check above would prove nothing.
    page.goto(f"{server.url}/en/submit")
    form_box = page.locator("form").bounding_box()
    box = page.locator("legend").first.bounding_box()
    assert form_box
    assert box
    gap_left = box["x"] - form_box["x"]
    gap_right = form_box["x"] + form_box["width"] - (box["x"] + box["width"])
    assert gap_left < 40 < gap_right


def test_too_large_upload_shows_the_translated_413_page(tmp_path, browser) -> None:
    from intake_server.install import init_demo
    from support.server_process import ServerProcess, free_port

    srv = ServerProcess(tmp_path, free_port())
    config = init_demo(srv.demo_dir, port=srv.port)
    text = config.read_text().replace("max_submission_bytes = 524288000",
                                      "max_submission_bytes = 1000000")
    config.write_text(text)
    srv.start()
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{srv.url}/ar/submit")
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(3_000_000))
        page.check('input[name="category"][value="other"]')
        page.set_input_files("#files", [str(big)])
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert "بلاغك كبير جدًا" in page.content()
        assert list(srv.store_dir.iterdir()) == []
        assert list(srv.incoming_dir.iterdir()) == []
    finally:
        context.close()
        srv.stop()
