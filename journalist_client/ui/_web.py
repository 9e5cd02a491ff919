"""What the UI's application and its pages share: the state, typed app keys, rendering.

Kept apart from app.py (which builds the application from views.py) so that neither
imports the other.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Final

import jinja2
from aiohttp import web

from journalist_client.ui._worker import ImportJob, VaultWorker
from journalist_client.ui.i18n import translations

__all__ = ["JINJA", "LANGUAGE_META", "N_", "STATE", "WORKER", "UIState", "refuse", "render",
           "same_secret"]

# The vault meta key holding a triager's language ("ui_language:" + their name).
LANGUAGE_META: Final = "ui_language:"


@dataclass
class UIState:
    port: int
    token: str
    language: str
    token_used: bool = False
    session: str = ""
    csrf: str = ""
    # Messages for the next page shown (after a POST, redirect, GET): (kind, text).
    flash: list[tuple[str, str]] = field(default_factory=list)
    job: ImportJob | None = None

    @property
    def cookie(self) -> str:
        """The session cookie's name: cookies are not kept apart by port, so two UIs
        (two vaults) in one browser would otherwise log each other out."""
        return f"amana_ui_{self.port}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


WORKER: Final = web.AppKey("worker", VaultWorker)
STATE: Final = web.AppKey("state", UIState)
JINJA: Final = web.AppKey("jinja", dict[str, jinja2.Environment])


def render(request: web.Request, template: str, *, status: int = 200,
           **context: object) -> web.Response:
    state = request.app[STATE]
    env = request.app[JINJA][state.language]
    flash, state.flash = state.flash, []
    body = env.get_template(template).render(csrf=state.csrf, flash=flash,
                                             path=request.path, **context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "translated later"
    """Marks a message for the catalogue; :func:`refuse` translates it when shown."""
    return message


def refuse(request: web.Request, status: int, reason: str) -> web.Response:
    """A refusal page in the triager's language (a library's message stays as it is)."""
    language = request.app[STATE].language
    env = request.app[JINJA][language]
    body = env.get_template("refused.html").render(
        status=status, reason=translations(language).gettext(reason))
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")




def same_secret(secret: str, given: str) -> bool:
    """Constant-time comparison of a secret; never true for an empty secret."""
    return bool(secret) and hmac.compare_digest(secret.encode("utf-8", "replace"),
                                                given.encode("utf-8", "replace"))
