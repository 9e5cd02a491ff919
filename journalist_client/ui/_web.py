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

__all__ = ["JINJA", "LANGUAGE_META", "STATE", "WORKER", "UIState", "refuse", "render",
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
    # The statistics package (journalist_client.stats), when this build has one.
    stats: object | None = None

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


def refuse(request: web.Request, status: int, reason: str) -> web.Response:
    env = request.app[JINJA][request.app[STATE].language]
    body = env.get_template("refused.html").render(status=status, reason=reason)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")




def same_secret(secret: str, given: str) -> bool:
    """Constant-time comparison of a secret; never true for an empty secret."""
    return bool(secret) and hmac.compare_digest(secret.encode("utf-8", "replace"),
                                                given.encode("utf-8", "replace"))
