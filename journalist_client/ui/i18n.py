"""The UI's languages and one autoescaping Jinja2 environment per language.

The gettext domain is ``ui``: journalist_client/locales/{ar,fr}/LC_MESSAGES/ui.po,
compiled in memory at start-up as the intake server does (no .mo file to drift from
its .po); English is the source language. Every string a source wrote reaches a
template raw and leaves it escaped (autoescape) and through :func:`source_text`.
"""

from __future__ import annotations

import functools
import gettext
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import jinja2
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from journalist_client.display import inert

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "Language", "load_environments", "source_text",
           "translations"]

LOCALES_DIR: Final = Path(__file__).resolve().parent.parent / "locales"
TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"
DOMAIN: Final = "ui"


@dataclass(frozen=True)
class Language:
    code: str
    native_name: str
    direction: str  # "ltr" or "rtl"


LANGUAGES: Final = {
    "en": Language("en", "English", "ltr"),
    "ar": Language("ar", "العربية", "rtl"),
    "fr": Language("fr", "Français", "ltr"),
}
DEFAULT_LANGUAGE: Final = "en"


@functools.cache
def translations(code: str) -> gettext.NullTranslations:
    """The ``ui`` catalogue of language ``code``, compiled once."""
    if code == "en":
        return gettext.NullTranslations()
    with (LOCALES_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as f:
        catalog = read_po(f, locale=code)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def source_text(value: object) -> str:
    """Text a source wrote, for a page: controls, bidi overrides and invisible format
    characters shown as visible escapes (display.inert, as the CLI shows them), so a
    U+202E cannot turn ``exe.pdf`` around and a zero-width space cannot hide in a
    name; line breaks stay. Autoescape then makes it HTML text."""
    return inert(str(value), keep_newlines=True)


def load_environments() -> dict[str, jinja2.Environment]:
    envs: dict[str, jinja2.Environment] = {}
    loader = jinja2.FileSystemLoader(TEMPLATES_DIR)
    for code, lang in LANGUAGES.items():
        env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # Added to the environment by the i18n extension, unknown to jinja2's stubs.
        env.install_gettext_translations(  # type: ignore[attr-defined]
            translations(code), newstyle=True)
        locale = Locale.parse(code)
        env.filters["src"] = source_text
        env.globals["lang"] = lang
        env.globals["languages"] = LANGUAGES
        env.globals["country_name"] = lambda cc, _l=locale: _l.territories.get(cc, cc)
        envs[code] = env
    return envs
