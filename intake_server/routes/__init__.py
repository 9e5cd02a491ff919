"""URL map of the source app: one RouteTableDef per room. Language is the first path segment.

pages: the language choice, the safety advice, the stylesheet. submit: the
questionnaire and the report upload. inbox: the source's way back in (login, replies,
follow-ups, logout).
"""

from __future__ import annotations

from aiohttp import web

from . import inbox, pages, submit

__all__ = ["setup_routes"]


def setup_routes(app: web.Application) -> None:
    for module in (pages, submit, inbox):
        app.router.add_routes(module.routes)
