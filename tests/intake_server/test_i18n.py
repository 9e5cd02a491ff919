"""Catalogues: every user-visible string translated in en, ar and fr; nothing fuzzy.

The messages are extracted from the code and the templates with Babel, exactly as
`pybabel extract -F intake_server/babel.cfg -k N_` does, and compared with each
committed .po file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from intake_server.i18n import LANGUAGES, LOCALES_DIR

ROOT = Path(__file__).resolve().parents[2]


def extracted_messages() -> set[str | tuple[str, str]]:
    method_map = [("intake_server/**.py", "python"), ("intake_server/templates/*.html", "jinja2")]
    options = {"intake_server/templates/*.html": {"extensions": "jinja2.ext.i18n",
                                                  "trim_blocks": "True",
                                                  "lstrip_blocks": "True"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str | tuple[str, str]] = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
            ROOT, method_map, options, keywords=keywords):
        found.add(message)
    return found


@pytest.fixture(scope="module")
def messages() -> set[str | tuple[str, str]]:
    found = extracted_messages()
    assert len(found) > 100
    return found


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_catalogue_is_complete_and_not_fuzzy(messages, lang) -> None:
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    assert not catalog.fuzzy
    entries = {m.id: m for m in catalog if m.id}
    missing = [m for m in messages if m not in entries]
    assert not missing, f"{lang}: not in the catalogue: {missing}"
    obsolete = [m for m in entries if m not in messages]
    assert not obsolete, f"{lang}: no longer used: {obsolete}"
    for msg_id, entry in entries.items():
        assert not entry.fuzzy, f"{lang}: fuzzy: {msg_id!r}"
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        assert all(s.strip() for s in strings), f"{lang}: untranslated: {msg_id!r}"
        if isinstance(msg_id, tuple):
            assert len(strings) == catalog.num_plurals
    # Babel's checkers: python-format placeholders kept, plural counts right.
    for message, errors in catalog.check():
        assert not errors, f"{lang}: {message.id!r}: {errors}"


def test_arabic_and_french_are_really_translated() -> None:
    for lang in ("ar", "fr"):
        with (LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=lang)
        same = [m.id for m in catalog if m.id and m.string == m.id
                and m.id not in ("Amana", "Android", "Windows", "Linux")]
        assert not same, f"{lang}: copied, not translated: {same}"
    with (LOCALES_DIR / "ar" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        assert read_po(f, locale="ar").num_plurals == 6
