"""Read-only pages: language choice, the safety advice with desk fingerprints, CSS."""

from __future__ import annotations

from aiohttp import web
from markupsafe import Markup

from intake_server.i18n import LANG_SEGMENT, LANGUAGES
from intake_server.rendering import render
from intake_server.state import CSS, KEYRING
from keys.fingerprint import fingerprint_qr_payload
from keys.qr import qr_svg

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/")
async def choose_language(request: web.Request) -> web.Response:
    return render(request, "choose.html", lang="en", desks=_desks(request))


@routes.get(f"/{LANG_SEGMENT}")
async def redirect_to_slash(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"/{request.match_info['lang']}/")


def _desks(request: web.Request) -> list[dict[str, object]]:
    return [
        {
            "names": {code: d.name(code) for code in LANGUAGES},
            "fingerprint": d.fingerprint,
            # qr_svg builds the element from a fixed template and a module
            # matrix; nothing in it comes from the request.
            "qr": Markup(qr_svg(fingerprint_qr_payload(d.fingerprint, d.id))),  # noqa: S704
        }
        for d in request.app[KEYRING].desks
    ]


@routes.get(f"/{LANG_SEGMENT}/")
async def index(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    return render(request, "index.html", lang=lang, desks=_desks(request))


@routes.get("/static/style.css")
async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CSS], content_type="text/css", charset="utf-8")
