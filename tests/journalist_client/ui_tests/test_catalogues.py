"""Every string of the UI is translated into Arabic and French, none fuzzy."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir, extract_python
from babel.messages.pofile import read_po

UI = Path(__file__).resolve().parents[3] / "journalist_client" / "ui"
LOCALES = UI.parent / "locales"


def _msgids() -> set[str]:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n",
                                        "trim_blocks": "True", "lstrip_blocks": "True"}}
    keywords = {"_": None, "gettext": None, "_t": (2,), "N_": None}
    found = {msg for _, _, msg, _, _ in extract_from_dir(
        str(UI), method_map, options, keywords=keywords) if isinstance(msg, str)}
    # The statistics, charts and advocacy pack are labelled from the same catalogue.
    for module in ("stats.py", "stats_charts.py"):
        with (UI.parent / module).open("rb") as f:
            found |= {msg for _, _, msg, _ in extract_python(f, keywords, [], {})
                      if isinstance(msg, str)}
    return found


@pytest.mark.parametrize("lang", ["ar", "fr"])
def test_every_ui_string_is_translated(lang: str) -> None:
    with (LOCALES / lang / "LC_MESSAGES" / "ui.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    wanted = _msgids()
    assert len(wanted) > 100
    assert sorted(wanted - translated) == []
    assert [m.id for m in catalog if m.id and m.fuzzy] == []
