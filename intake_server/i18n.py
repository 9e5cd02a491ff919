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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "LANG_SEGMENT", "Language", "format_size",
           "load_environments"]

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


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


# Binary units, as the configuration's defaults are written (500 MiB is 524288000 bytes):
# a limit shown as "1 MiB" is exactly max_file_bytes = 1048576.
_UNITS = (
    (1024**3, N_("%(number)s GiB")),
    (1024**2, N_("%(number)s MiB")),
    (1024, N_("%(number)s KiB")),
    (1, N_("%(number)s B")),
)


def format_size(n: int, code: str, gettext: Callable[[str], str]) -> str:
    """A size in bytes for a person reading ``code``: "1.5 MiB", "1,5 Mio", "1.5 ميغابايت".

    Rounded down to one decimal, so that a limit is never shown larger than it is.
    Digits as everywhere else on these pages (Babel's default, Latin digits: the
    pages' other numbers are formatted by gettext's %d).
    """
    for unit, message in _UNITS:
        if n >= unit or unit == 1:
            tenths = n * 10 // unit
            number = format_decimal(tenths / 10, format="#,##0.#", locale=code)
            return gettext(message) % {"number": number}
    raise AssertionError("unreachable")


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
        env.globals["size"] = (lambda n, _c=code, _t=translations[code]:
                               format_size(n, _c, _t.gettext))
        envs[code] = env
    return envs
