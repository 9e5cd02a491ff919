"""The source-facing aiohttp application: create_app(config) and its plumbing.

State lives under typed AppKeys; the storage (SQLite + ciphertext directories)
and the codename worker pool are opened and closed in cleanup_ctx. Two pieces of
cross-cutting policy live here because they must apply to every response:

- security headers (CSP, no-referrer, nosniff, frame denial, no-store, ...) and
  no Server header, set in on_response_prepare so that static files, error
  pages and 404s get them too, and on the answers aiohttp gives requests it cannot
  parse (protocol_errors.py);
- errors: every HTTP error and every unexpected exception becomes a translated
  error page; an unexpected exception is logged by type and code location only,
  never with its message (it may quote submitted bytes) or anything about the
  client.

Nothing here reads request.remote, the peer address, X-Forwarded-For or
User-Agent, and the server runs with access_log=None.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import jinja2
from aiohttp import web

from keys.keyring import Keyring

from .config import Config
from .i18n import DEFAULT_LANGUAGE, LANGUAGES, load_environments
from .protocol_errors import SECURITY_HEADERS, install, secure
from .ratelimit import TokenBucket
from .sessions import SessionStore
from .sources import LoginDeriver, SourceFactory
from .staff.store import StaffStore
from .storage import Storage

__all__ = [
    "CONFIG",
    "CSS",
    "JINJA",
    "KEYRING",
    "LOGINS",
    "LOGIN_BUCKET",
    "REPLIES",
    "SECURITY_HEADERS",
    "SESSIONS",
    "SOURCES",
    "STORAGE",
    "UPLOADS",
    "create_app",
    "render",
]

log = logging.getLogger("intake_server")

# At shutdown, how long to wait for aborted uploads' threads to end (a write running
# when the handler was cancelled) so that their files are deleted before exit. With
# aiohttp's 5 s for the handlers, inside systemd's TimeoutStopSec=15s (deploy/).
UPLOADS_END_SECONDS = 5.0

CONFIG = web.AppKey("config", Config)
STORAGE = web.AppKey("storage", Storage)
KEYRING = web.AppKey("keyring", Keyring)
JINJA = web.AppKey("jinja", dict[str, jinja2.Environment])
SOURCES = web.AppKey("sources", SourceFactory)
CSS = web.AppKey("css", bytes)
SESSIONS = web.AppKey("sessions", SessionStore)
LOGINS = web.AppKey("logins", LoginDeriver)
LOGIN_BUCKET = web.AppKey("login_bucket", TokenBucket)
# The replies table and directory, owned by the staff side, read (and deleted
# from) by the source's inbox.
REPLIES = web.AppKey("replies", StaffStore)


class UploadSlots:
    """Counts uploads in progress against config.max_concurrent_uploads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


UPLOADS = web.AppKey("uploads", UploadSlots)

async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    secure(response)


def language_of(request: web.Request) -> str:
    """The page language: the first path segment if it is one of ours."""
    first = request.path.lstrip("/").split("/", 1)[0]
    return first if first in LANGUAGES else DEFAULT_LANGUAGE


def render(request: web.Request, template: str, *, status: int = 200,
           lang: str | None = None, **context: object) -> web.Response:
    env = request.app[JINJA][lang or language_of(request)]
    body = env.get_template(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


ERROR_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Too slow",
    413: "Too large",
    429: "Too busy",
    500: "Server error",
    503: "Not accepting reports right now",
}


def error_page(request: web.Request, status: int, reason: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    if status not in ERROR_TITLES:
        status = 400 if status < 500 else 500
    resp = render(request, "error.html", status=status, code=status, reason=reason)
    if headers:
        resp.headers.update(headers)
    return resp


@web.middleware
async def _error_middleware(
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
    except Exception as exc:  # noqa: BLE001 - every failure becomes a page, not a trace
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        # Type and location only: the message may quote what the source sent.
        log.error("internal error: %s at %s:%s", type(exc).__name__,
                  Path(frame.filename).name, frame.lineno)
        return error_page(request, 500)


def create_app(config: Config) -> web.Application:
    from .routes import setup_routes

    app = web.Application(middlewares=[_error_middleware],
                          # request.post()/read() are never used; this caps anything else.
                          client_max_size=64 * 1024)
    app[CONFIG] = config
    app[JINJA] = load_environments()
    app[CSS] = (Path(__file__).parent / "static" / "style.css").read_bytes()
    app[UPLOADS] = UploadSlots(config.max_concurrent_uploads)
    keyring = Keyring.load(config.keyring)
    if not keyring.desks:
        raise RuntimeError(f"{config.keyring}: the keyring lists no desk")
    if config.default_desk and keyring.get(config.default_desk) is None:
        raise RuntimeError(f"default_desk {config.default_desk!r} is not in the keyring")
    app[KEYRING] = keyring
    # Created here, opened in cleanup_ctx: the app's state is fixed before start-up.
    app[STORAGE] = Storage(config)
    app[SOURCES] = SourceFactory(config.max_concurrent_derivations, config.codename_reserve)
    app[REPLIES] = StaffStore(app[STORAGE])
    app[SESSIONS] = SessionStore()
    app[LOGINS] = LoginDeriver(config.max_concurrent_logins, config.max_waiting_logins)
    app[LOGIN_BUCKET] = TokenBucket(rate_per_second=config.logins_per_minute / 60,
                                    burst=config.login_burst)
    app.on_response_prepare.append(_on_prepare)
    install()
    app.cleanup_ctx.append(_resources)
    setup_routes(app)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    storage = app[STORAGE]
    storage.open()  # also removes orphans from an interrupted upload
    # Idempotent (CREATE ... IF NOT EXISTS); the staff app, sharing this storage,
    # opens it too. Only at start-up, before either app serves a request.
    app[REPLIES].open()
    app[SOURCES].refill()
    try:
        yield
    finally:
        app[LOGINS].close()
        app[SOURCES].close()
        if not await storage.uploads_ended(timeout=UPLOADS_END_SECONDS):
            log.warning("an upload's disk work did not end in time; what it left in "
                        "the data directory is removed at the next start")
        storage.close()
