"""The UI in Debian's Chromium, with JavaScript on and off, in English and Arabic:
import a bundle, triage a report from new to closed, reply, refer (refused without
consent, allowed with a recorded override), search in Arabic. Every page is checked
for what it must never do: open a dialog, log a console error, or ask anything but
the UI itself for a resource. Screenshots go to the test's tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The parent folder's builders: "journalist_client" on the path is the package itself.
from ..conftest import Server, report_doc  # noqa: TID252
from .conftest import UI, Watched

pytestmark = pytest.mark.slow


def _quiet(w: Watched, ui: UI, *, refused: int = 0) -> None:
    """No dialog, no script error, nothing fetched from elsewhere; the only console
    errors are Chromium's own line for each page answered 400 on purpose."""
    assert w.dialogs == []
    errors = [c for c in w.console if c.startswith("error")]
    assert errors == ["error: Failed to load resource: the server responded with a status "
                      "of 400 (Bad Request)"] * refused
    assert w.errors == []
    assert [u for u in w.requests if not u.startswith(ui.origin + "/")] == []


@pytest.mark.parametrize("js", [False, True], ids=["js-off", "js-on"])
@pytest.mark.parametrize("locale", ["en", "ar"])
def test_import_triage_reply_search(open_ui: Callable[..., Watched], ui: UI,
                                    server: Server, imported: dict[str, str],
                                    tmp_path: Path, js: bool, locale: str) -> None:
    w = open_ui(js=js)
    page: Any = w.page
    # The language is the triager's choice, kept in the vault.
    page.select_option("select[name=lang]", locale)
    page.click("form.lang button")
    assert page.get_attribute("html", "dir") == ("rtl" if locale == "ar" else "ltr")
    assert page.get_attribute("html", "lang") == locale

    # Import from USB: one new report, with the progress page until it is done.
    new = report_doc(description="تهديد جديد من رقم مجهول", country="MA")
    bundle = server.bundle([server.item(new)])
    page.goto(ui.origin + "/import")
    page.fill("input[name=path]", str(bundle))
    page.click("form[action='/import'] button")
    page.wait_for_selector("#result", timeout=30_000)  # meta refresh, no script needed
    assert "1 imported, 0 already here, 0 quarantined." in page.inner_text("#job")

    # Inbox: the new report is there, severity as text.
    page.goto(ui.origin + "/")
    assert page.locator(f"a[href='/item/{new['submission_id']}']").count() == 1
    page.screenshot(path=str(tmp_path / f"inbox-{locale}-js{js}.png"), full_page=True)
    rows = page.locator("#inbox .row-link")
    if js:  # static/ui.js: j and k move between the rows, Enter opens
        page.keyboard.press("j")
        page.keyboard.press("j")
        assert page.evaluate("document.activeElement.getAttribute('href')") == \
            rows.nth(1).get_attribute("href")
        first = rows.nth(0).get_attribute("href")
        page.keyboard.press("k")
        page.keyboard.press("Enter")
        page.wait_for_url(ui.origin + first)
    else:  # without script the rows are links, reached with Tab like any other
        assert rows.count() >= 5

    # Triage a report from new to closed.
    item = imported["a"]
    page.goto(ui.origin + f"/item/{item}")
    for status, severity in (("triaged", "S2"), ("in-progress", "S2"), ("closed", "S2")):
        page.select_option("form.triage select[name=status]", status)
        page.select_option("form.triage select[name=severity]", severity)
        page.fill("form.triage input[name=tags]", f"t-{status}")
        page.click("form.triage button")
        assert page.locator(".summary .status").get_attribute("class") == \
            f"status status-{status}"
    assert "S2" in page.inner_text(".summary .sev")
    history = page.inner_text("table.history")
    assert "closed" in history
    assert "t-closed" in history
    page.screenshot(path=str(tmp_path / f"report-{locale}-js{js}.png"), full_page=True)

    # A note and a reply.
    page.fill("textarea[name=text]", "اتصلت بها، الهاتف صودر على الحدود")
    page.click("form[action$='/note'] button")
    assert "الهاتف صودر" in page.inner_text("#note-list")
    page.goto(ui.origin + f"/item/{item}/reply")
    page.fill("textarea[name=text]", "شكرًا، سنتواصل معك قريبًا")
    page.click("form button[type=submit] >> nth=-1")
    page.goto(ui.origin + "/outbox")
    assert item[:12] in page.inner_text("main table")

    # Search in Arabic: the match is marked, in a dir=auto snippet.
    page.goto(ui.origin + "/search?q=" + "الإمارات")
    mark = page.locator("p.snippet mark").first
    assert mark.inner_text() == "الإمارات"
    assert page.locator("p.snippet").first.get_attribute("dir") == "auto"
    page.screenshot(path=str(tmp_path / f"search-{locale}-js{js}.png"), full_page=True)
    _quiet(w, ui)


def test_refer_enforces_consent(open_ui: Callable[..., Watched], ui: UI,
                                declined: str, imported: dict[str, str]) -> None:
    w = open_ui(js=False)
    page: Any = w.page
    page.goto(ui.origin + f"/item/{declined}/refer")
    assert "DECLINED" in page.inner_text("#consent")
    page.select_option("select[name=to]", "lawyers")
    page.fill("textarea[name=note]", "needs legal help")
    page.click("main form button")
    # Refused without a reason: said on the page, nothing queued.
    assert "declined sharing within the coalition" in page.inner_text("[role=alert]")
    page.goto(ui.origin + "/outbox")
    assert declined[:12] not in page.inner_text("main")
    # With a reason: queued, and the override is recorded and shown with the report.
    page.goto(ui.origin + f"/item/{declined}/refer")
    page.fill("textarea[name=note]", "needs legal help")
    page.fill("input[name=override]", "the source asked by phone on 2026-12-01")
    page.click("main form button")
    assert "is in the outbox" in page.inner_text("main")
    assert "asked by phone" in page.inner_text("p.warning")
    page.goto(ui.origin + "/outbox")
    assert declined[:12] in page.inner_text("main table")
    # A report whose source consented has no override field and is referred at once.
    page.goto(ui.origin + f"/item/{imported['a']}/refer")
    assert page.locator("input[name=override]").count() == 0
    page.fill("textarea[name=note]", "forensics")
    page.click("main form button")
    assert "is in the outbox" in page.inner_text("main")
    _quiet(w, ui, refused=1)  # the refused referral
