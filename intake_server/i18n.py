"""Languages, gettext catalogues and one Jinja2 environment per language.

The .po catalogues under locales/ are the committed source of truth; they are
compiled to gettext tables in memory at start-up (Babel's write_mo into a
BytesIO). Why at start-up rather than committing .mo files or compiling at
build time: there is no binary artefact that can drift from its .po, nothing to
forget in the install step, and compiling three small catalogues takes a few
milliseconds. Fuzzy entries are never used (write_mo skips them), and the test
suite fails on any fuzzy or untranslated entry anyway.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import jinja2
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "LANG_SEGMENT", "Language", "load_environments"]

LOCALES_DIR = Path(__file__).parent / "locales"
TEMPLATES_DIR = Path(__file__).parent / "templates"
DOMAIN = "messages"


@dataclass(frozen=True)
class Language:
    code: str
    native_name: str
    direction: str  # "ltr" or "rtl"


LANGUAGES: dict[str, Language] = {
    "en": Language("en", "English", "ltr"),
    "ar": Language("ar", "العربية", "rtl"),
    "fr": Language("fr", "Français", "ltr"),
}
DEFAULT_LANGUAGE = "en"
# The first path segment of every page: the language, as an aiohttp route variable.
LANG_SEGMENT = "{lang:" + "|".join(LANGUAGES) + "}"


def load_translations(code: str) -> Translations:
    po_path = LOCALES_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po_path.open("rb") as f:
        catalog = read_po(f, locale=code)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def load_environments() -> dict[str, jinja2.Environment]:
    """One autoescaping environment per language, gettext installed (newstyle)."""
    envs: dict[str, jinja2.Environment] = {}
    loader = jinja2.FileSystemLoader(TEMPLATES_DIR)
    translations = {code: load_translations(code) for code in LANGUAGES}
    # The language-choice page speaks every language at once.
    gettext_in = {code: t.gettext for code, t in translations.items()}
    for code, lang in LANGUAGES.items():
        env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # The i18n extension adds this method to the environment when it loads, so
        # jinja2's type stubs cannot know it.
        env.install_gettext_translations(  # type: ignore[attr-defined]
            translations[code], newstyle=True)
        env.globals["gettext_in"] = gettext_in
        locale = Locale.parse(code)
        env.globals["lang"] = lang
        env.globals["languages"] = LANGUAGES
        env.globals["country_name"] = lambda cc, _l=locale: _l.territories.get(cc, cc)
        envs[code] = env
    return envs
