"""URL map of the source app. Language is the first path segment."""

from __future__ import annotations

from aiohttp import web

from . import pages, source, submit

__all__ = ["setup_routes"]

LANG = "{lang:en|ar|fr}"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", pages.choose_language)
    app.router.add_get(f"/{LANG}", pages.redirect_to_slash)
    app.router.add_get(f"/{LANG}/", pages.index)
    app.router.add_get(f"/{LANG}/submit", submit.form)
    app.router.add_post(f"/{LANG}/submit", submit.receive)
    app.router.add_get(f"/{LANG}/login", source.login_form)
    app.router.add_post(f"/{LANG}/login", source.login)
    app.router.add_get(f"/{LANG}/inbox", source.inbox)
    app.router.add_post(f"/{LANG}/inbox/delete", source.delete_reply)
    app.router.add_post(f"/{LANG}/followup", source.followup)
    app.router.add_post(f"/{LANG}/logout", source.logout)
    app.router.add_get("/static/style.css", pages.stylesheet)
