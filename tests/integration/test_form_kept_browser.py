"""Real browser, JavaScript off: a refused report gives the form back (issue 14, item 3).

Debian's Chromium under Playwright against the real `intake-server demo` process,
with max_file_bytes lowered to 1 MiB. No desk ticked: the page shows the problem
next to the desks and every answer still in its field. Then an oversized file: the
413 answer names the per-file limit, keeps the answers and asks for the files
again. Then the same page, a desk ticked and a small file chosen, is received.
In English and in Arabic (right to left).
"""

from __future__ import annotations

import os

import pytest

from support.server_process import ServerProcess, free_port

DESK_PROBLEM = {"en": "Please choose at least one desk to receive your report.",
                "ar": "يرجى اختيار مكتب واحد على الأقل لاستلام بلاغك."}
FILE_LIMIT = {"en": "each file can be at most 1 MiB",
              "ar": "لا يجوز أن يزيد الملف الواحد على 1 ميغابايت"}
FORM_HINT_LIMIT = {"en": "each at most 1 MiB", "ar": "لا يزيد كل ملف على 1 ميغابايت"}
FILES_AGAIN = {"en": "please choose them again", "ar": "يرجى اختيارها من جديد"}
TOO_LARGE = {"en": "Your report is too large", "ar": "بلاغك كبير جدًا"}
RECEIVED = {"en": "Your report was received", "ar": "وصل بلاغك"}


@pytest.fixture
def small_files_server(tmp_path):  # type: ignore[no-untyped-def]
    from intake_server.install import init_demo

    srv = ServerProcess(tmp_path, free_port())
    config = init_demo(srv.demo_dir, port=srv.port)
    text = config.read_text()
    assert "max_file_bytes = 524288000" in text
    config.write_text(text.replace("max_file_bytes = 524288000", "max_file_bytes = 1048576"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _fill(page, lang: str) -> None:  # type: ignore[no-untyped-def]
    page.check('input[name="category"][value="acct"]')
    page.click("summary")
    page.check('input[name="secondary"][value="spyware"]')
    page.select_option("#country", "MA")
    page.fill("#incident_date", "last week")
    page.fill("#description", f"{lang}: رسالة مشبوهة <b>not bold</b>\nsecond line")
    page.fill("#senders", "+212 600 000 000")
    page.check('input[name="target"][value="self"]')
    page.select_option("#profession", "journalist")
    page.check('input[name="platforms"][value="android"]')
    page.fill("#device_details", "Pixel 7")
    page.check('input[name="consent_share"]')


def _assert_answers_kept(page, lang: str) -> None:  # type: ignore[no-untyped-def]
    assert page.is_checked('input[name="category"][value="acct"]')
    assert page.is_checked('input[name="secondary"][value="spyware"]')
    assert page.input_value("#country") == "MA"
    assert page.input_value("#incident_date") == "last week"
    assert page.input_value("#description") == f"{lang}: رسالة مشبوهة <b>not bold</b>\nsecond line"
    assert page.input_value("#senders") == "+212 600 000 000"
    assert page.input_value("#links") == ""
    assert page.is_checked('input[name="target"][value="self"]')
    assert page.input_value("#profession") == "journalist"
    assert page.is_checked('input[name="platforms"][value="android"]')
    assert not page.is_checked('input[name="platforms"][value="ios"]')
    assert page.input_value("#device_details") == "Pixel 7"
    assert page.is_checked('input[name="consent_share"]')
    assert not page.is_checked('input[name="consent_publish"]')


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_a_refused_report_comes_back_with_every_answer(
        small_files_server, new_page, tmp_path, lang) -> None:  # type: ignore[no-untyped-def]
    srv = small_files_server
    page = new_page("ar" if lang == "ar" else "en-US")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1024 * 1024 + 1))
    small = tmp_path / "small.png"
    small.write_bytes(os.urandom(5000))

    page.goto(f"{srv.url}/{lang}/submit")
    assert FORM_HINT_LIMIT[lang] in page.inner_text(".hint")
    _fill(page, lang)
    page.uncheck('input[name="desks"][value="triage"]')  # the default desk: none left
    with page.expect_navigation():
        page.click("button[type=submit]")

    # 400: the form again, the problem inside the desks' fieldset.
    assert page.get_attribute("html", "dir") == ("rtl" if lang == "ar" else "ltr")
    desks = page.locator('fieldset:has(input[name="desks"])')
    assert desks.locator("#problem-desks").inner_text() == DESK_PROBLEM[lang]
    assert desks.locator('input[aria-invalid="true"]').count() == 2
    _assert_answers_kept(page, lang)
    assert not page.is_checked('input[name="desks"][value="triage"]')
    if lang == "ar":
        # Right to left: the message starts at the fieldset's right edge.
        field_box = desks.bounding_box()
        box = desks.locator("#problem-desks").bounding_box()
        assert field_box
        assert box
        gap_right = field_box["x"] + field_box["width"] - (box["x"] + box["width"])
        assert gap_right < 40

    # A desk, and a file one byte over the limit: 413, the limit named, answers kept.
    page.check('input[name="desks"][value="forensics"]')
    page.set_input_files("#files", [str(big)])
    with page.expect_navigation():
        page.click("button[type=submit]")
    content = page.content()
    assert TOO_LARGE[lang] in content
    assert FILE_LIMIT[lang] in page.inner_text("#problem-files")
    assert FILES_AGAIN[lang] in page.inner_text("#files-again")
    _assert_answers_kept(page, lang)
    assert page.is_checked('input[name="desks"][value="forensics"]')
    assert list(srv.store_dir.iterdir()) == []
    assert list(srv.incoming_dir.iterdir()) == []

    # The same page, a file that fits: received.
    page.set_input_files("#files", [str(small)])
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert RECEIVED[lang] in page.content()
    assert len(list(srv.store_dir.iterdir())) == 2  # the report and its attachment
    assert all(u.startswith(srv.url) for u in page.requests), page.requests
