"""The statistics page in Debian's Chromium with JavaScript off, in English and Arabic:
the same suppressed table as `journalist-client stats`, its chart served by the UI
itself under the CSP, and nothing asked of anything else. Screenshots in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The parent folder's builders: "journalist_client" on the path is the package itself.
from ..conftest import Run, Server, counted_reports  # noqa: TID252
from .conftest import UI, Watched, start_ui

pytestmark = pytest.mark.slow


@pytest.fixture
def ui(run: Run, server: Server, vault_dir: Path, passfile: Path) -> Iterator[UI]:
    """The UI over a vault of 32 reports: 30 whose source consented to anonymised
    figures, in October and November 2026, two that did not."""
    docs = counted_reports()
    code, _, err = run("import", str(server.bundle([server.item(d) for d in docs])))
    assert code == 0, err
    u = start_ui(vault_dir, passfile)
    try:
        yield u
    finally:
        u.stop()


@pytest.mark.parametrize("locale", ["en", "ar"])
def test_the_statistics_page_without_javascript(open_ui: Callable[..., Watched], ui: UI,
                                                tmp_path: Path, locale: str) -> None:
    w = open_ui(js=False)
    page: Any = w.page
    page.select_option("select[name=lang]", locale)
    page.click("form.lang button")
    page.goto(ui.origin + "/stats?since=2026-10&until=2026-11&by=country&k=5")
    assert page.get_attribute("html", "dir") == ("rtl" if locale == "ar" else "ltr")
    cells = page.locator("table.stats tbody tr").all_inner_texts()
    names = {"en": ("United Arab Emirates", "Egypt", "Lebanon"),
             "ar": ("الإمارات العربية المتحدة", "مصر", "لبنان")}[locale]
    # One small count (Egypt, 2), and Lebanon hidden with it so the total does not give
    # Egypt away; the two reports without consent are counted apart, and small.
    assert [c.split("\t") for c in cells] == [[names[0], "15"], [names[1], "<5"],
                                              [names[2], "x"]]
    assert page.locator("table.stats tfoot th").all_inner_texts()[1] == "30"
    assert "<5" in page.inner_text("p.hint")
    # The chart: an SVG the UI drew in memory, loaded under its own CSP.
    img = page.locator("img.chart")
    src = img.get_attribute("src")
    assert src.startswith("/stats/chart.svg?")
    resp = page.request.get(ui.origin + src)
    assert resp.status == 200
    assert resp.headers["content-type"] == "image/svg+xml"
    assert "<script" not in resp.text()
    page.screenshot(path=str(tmp_path / f"stats-{locale}.png"), full_page=True)
    assert w.dialogs == []
    assert [c for c in w.console if c.startswith("error")] == []
    assert [u for u in w.requests if not u.startswith(ui.origin + "/")] == []
    # The browser fetched the chart itself, and nothing else but the UI's own pages.
    assert any("/stats/chart.svg?" in u for u in w.requests)
