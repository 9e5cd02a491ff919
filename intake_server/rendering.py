"""Pages: a template rendered in the request's language, and the error pages.

Every HTTP error and every unexpected exception becomes a translated error page
(error_middleware); an unexpected exception is logged by type and code location only,
never with its message (it may quote submitted bytes) or anything about the client.
Two failures are not bugs and are not logged as such: the client going away (a
``ConnectionError`` while its body is read: normal over Tor), and the disk running
out of space wherever a handler wrote (the 503 page that says nothing was kept).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from . import report as rpt
from .i18n import DEFAULT_LANGUAGE, LANGUAGES
from .state import JINJA
from .storage import is_out_of_space

__all__ = ["ERROR_TITLES", "R_DISK_FULL", "error_middleware", "error_page", "language_of",
           "render"]

log = logging.getLogger("intake_server")

ERROR_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Too slow",
    413: "Too large",
    415: "Unsupported encoding",
    429: "Too busy",
    500: "Server error",
    503: "Not accepting reports right now",
}

# The same words as upload.R_FULL (one catalogue entry): whatever a handler was
# writing when the disk filled, it was not kept.
R_DISK_FULL = rpt.N_("The server cannot accept reports right now. Nothing was kept. "
                     "Please try again later.")


def language_of(request: web.Request) -> str:
    """The page language: the first path segment if it is one of ours."""
    first = request.path.lstrip("/").split("/", 1)[0]
    return first if first in LANGUAGES else DEFAULT_LANGUAGE


def render(request: web.Request, template: str, *, status: int = 200,
           lang: str | None = None, **context: object) -> web.Response:
    env = request.app[JINJA][lang or language_of(request)]
    body = env.get_template(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, reason: str | None = None,
               headers: dict[str, str] | None = None, *, limit: int | None = None
               ) -> web.Response:
    """The translated error page; ``limit`` (bytes) fills a reason's ``%(limit)s``."""
    if status not in ERROR_TITLES:
        status = 400 if status < 500 else 500
    resp = render(request, "error.html", status=status, code=status, reason=reason,
                  limit=limit)
    if headers:
        resp.headers.update(headers)
    return resp


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        extra = {}
        if exc.status == 405 and "Allow" in exc.headers:
            extra["Allow"] = exc.headers["Allow"]
        return error_page(request, exc.status, headers=extra)
    except ConnectionError:
        # The client went away while its body was read: nobody reads this answer,
        # and it is not a failure of the server.
        return _closing(error_page(request, 400, rpt.R_MALFORMED))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a page, not a trace
        if is_out_of_space(exc):
            return _closing(error_page(request, 503, R_DISK_FULL,
                                       headers={"Retry-After": "3600"}))
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        # Type and location only: the message may quote what the source sent.
        log.error("internal error: %s at %s:%s", type(exc).__name__,
                  Path(frame.filename).name, frame.lineno)
        return error_page(request, 500)


def _closing(response: web.Response) -> web.Response:
    # The rest of the request body, if any, was not read.
    response.force_close()
    return response
