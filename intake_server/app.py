"""The source-facing aiohttp application: create_app(config), and nothing else public.

create_app fixes the app's state (state.py's typed AppKeys) before start-up, and
opens and closes the storage (SQLite + ciphertext directories) and the worker pools
in cleanup_ctx. The routes (routes/) read the state through state.py; nothing imports
this module but the entry points and the tests. Two pieces of cross-cutting policy are
installed here because they must apply to every response:

- security headers (CSP, no-referrer, nosniff, frame denial, no-store, ...) and
  no Server header, set in on_response_prepare so that static files, error
  pages and 404s get them too, and on the answers aiohttp gives requests it cannot
  parse (protocol_errors.py);
- errors: every HTTP error and every unexpected exception becomes a translated
  error page (rendering.error_middleware);
- content codings: a request body declared compressed is refused before it is read
  (415, content_coding.py), so that every limit counts the bytes on the wire.

Nothing here reads request.remote, the peer address, X-Forwarded-For or
User-Agent, and the server runs with access_log=None.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from keys.keyring import Keyring

from . import report as rpt
from .config import Config
from .content_coding import refuse_content_codings
from .i18n import load_environments
from .protocol_errors import install, secure
from .ratelimit import TokenBucket, UploadSlots
from .rendering import error_middleware, error_page
from .routes import setup_routes
from .sessions import SessionStore
from .sources import LoginDeriver, SourceFactory
from .staff.store import StaffStore
from .state import (
    CONFIG,
    CSS,
    JINJA,
    KEYRING,
    LOGIN_BUCKET,
    LOGINS,
    REPLIES,
    SESSIONS,
    SOURCES,
    STORAGE,
    UPLOADS,
)
from .storage import Storage
from .upload import QUEUE_LENGTH

__all__ = ["create_app"]

log = logging.getLogger("intake_server")

# At shutdown, how long to wait for aborted uploads' threads to end (a write running
# when the handler was cancelled) so that their files are deleted before exit. With
# aiohttp's 5 s for the handlers, inside systemd's TimeoutStopSec=15s (deploy/).
UPLOADS_END_SECONDS = 5.0

R_CODED = rpt.N_("This server accepts only uncompressed uploads. Nothing was kept. "
                 "Please send it again from Tor Browser.")


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    secure(response)


def create_app(config: Config) -> web.Application:
    coded = refuse_content_codings(lambda request: error_page(request, 415, R_CODED))
    app = web.Application(middlewares=[error_middleware, coded],
                          # request.post()/read() are never used; this caps anything else.
                          client_max_size=64 * 1024)
    app[CONFIG] = config
    app[JINJA] = load_environments()
    app[CSS] = (Path(__file__).parent / "static" / "style.css").read_bytes()
    app[UPLOADS] = UploadSlots(config.max_concurrent_uploads, queue=QUEUE_LENGTH)
    keyring = Keyring.load(config.keyring)
    if not keyring.desks:
        raise RuntimeError(f"{config.keyring}: the keyring lists no desk")
    if config.default_desk and keyring.get(config.default_desk) is None:
        raise RuntimeError(f"default_desk {config.default_desk!r} is not in the keyring")
    app[KEYRING] = keyring
    # Created here, opened in cleanup_ctx: the app's state is fixed before start-up.
    app[STORAGE] = Storage(config)
    # A post-quantum keyring gives every source a post-quantum reply key as well.
    app[SOURCES] = SourceFactory(config.max_concurrent_derivations, config.codename_reserve,
                                 post_quantum=keyring.post_quantum)
    app[REPLIES] = StaffStore(app[STORAGE])
    app[SESSIONS] = SessionStore()
    app[LOGINS] = LoginDeriver(config.max_concurrent_logins, config.max_waiting_logins,
                               post_quantum=keyring.post_quantum)
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
