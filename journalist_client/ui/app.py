"""The local UI's web application: who may talk to it, the headers, and serving it.

Only the browser of the triager who started ``journalist-client ui`` gets in:

- the server listens on 127.0.0.1 only, on a port the system picks, and refuses a
  request from any other address;
- a request whose Host is not exactly ``127.0.0.1:PORT`` is refused, so a web page
  whose domain an attacker re-pointed at 127.0.0.1 (DNS rebinding) reads nothing;
- the first request must carry the one-time token printed on the terminal
  (``secrets.token_urlsafe(32)``, compared with ``hmac.compare_digest``); it is
  exchanged once for a session cookie (HttpOnly, SameSite=Strict, Path=/);
- a POST must come from this origin (Sec-Fetch-Site, else Origin) and carry the
  session's CSRF token: SameSite treats every port of 127.0.0.1 as the same site,
  so another local web server's page could otherwise post here with the cookie.

Every response carries a CSP without inline script or style (``default-src 'self'``),
no-store (decrypted reports must not land in the browser's disk cache), nosniff,
no-referrer and frame denial. The page works with JavaScript off; static/ui.js only
adds keyboard shortcuts.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from journalist_client.ui import views
from journalist_client.ui._web import (
    JINJA,
    LANGUAGE_META,
    N_,
    STATE,
    WORKER,
    UIState,
    refuse,
    same_secret,
)
from journalist_client.ui._worker import VaultWorker
from journalist_client.ui.i18n import DEFAULT_LANGUAGE, LANGUAGES, load_environments

__all__ = ["SECURITY_HEADERS", "create_app", "serve"]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
# A reply or note is at most 64 Ki characters: 1 MiB of url-encoded form is plenty.
MAX_BODY: Final = 1024 * 1024

CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
              "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
              "frame-ancestors 'none'")

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=(), serial=()",
}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update(SECURITY_HEADERS)
            raise
        resp = refuse(request, exc.status, exc.reason)
    resp.headers.update(SECURITY_HEADERS)
    return resp


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    if request.remote != "127.0.0.1":
        return refuse(request, 403, N_("This address may not use the triage UI."))
    if request.headers.get("Host") != f"127.0.0.1:{state.port}":
        # DNS rebinding: a page of evil.example re-pointed at 127.0.0.1 sends its own Host.
        return refuse(request, 403, N_("Wrong Host header."))
    if request.path in ("/login", "/favicon.ico") or request.path.startswith("/static/"):
        return await handler(request)
    if not same_secret(state.session, request.cookies.get(state.cookie, "")):
        return refuse(request, 403, N_("Open the address printed in the terminal where "
                                       "journalist-client ui runs."))
    if request.method not in ("GET", "HEAD"):
        # Sec-Fetch-Site is the browser's own word on where a request comes from
        # (Chromium, Firefox, Safari). With Referrer-Policy: no-referrer Chromium sends
        # "Origin: null" on a form post, so null is accepted only beside a
        # Sec-Fetch-Site of same-origin; without Sec-Fetch-Site the Origin must be ours.
        origin = request.headers.get("Origin")
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None:
            allowed = fetch_site == "same-origin" and origin in (None, "null", state.origin)
        else:
            allowed = origin == state.origin
        if not allowed:
            return refuse(request, 403, N_("A form must come from this page."))
    return await handler(request)


async def login(request: web.Request) -> web.StreamResponse:
    """Exchange the one-time token for the session cookie, then show the inbox."""
    state = request.app[STATE]
    given = request.query.get("token", "")
    if state.token_used or not same_secret(state.token, given):
        return refuse(request, 403, N_("This address was already used or is wrong. Use the "
                                       "browser window that opened it, or restart "
                                       "journalist-client ui."))
    state.token_used = True
    state.session = secrets.token_urlsafe(32)
    state.csrf = secrets.token_urlsafe(32)
    resp = web.HTTPSeeOther("/")
    resp.set_cookie(state.cookie, state.session, path="/", httponly=True,
                    samesite="Strict")
    raise resp


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def create_app(worker: VaultWorker, *, port: int, token: str,
               language: str = DEFAULT_LANGUAGE) -> web.Application:
    """The UI for the vault ``worker`` holds, served on 127.0.0.1:``port``."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    app = web.Application(middlewares=[headers_middleware, guard_middleware],
                          client_max_size=MAX_BODY)
    saved = worker.call(lambda v: v.meta(LANGUAGE_META + v.user))
    app[WORKER] = worker
    app[STATE] = UIState(port=port, token=token,
                         language=saved if saved in LANGUAGES else language)
    app[JINJA] = load_environments()
    app.router.add_get("/login", login)
    # Browsers ask for it on their own; an empty answer keeps a 404 out of the console.
    app.router.add_get("/favicon.ico", _no_icon)
    views.add_routes(app)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    return app


def loopback_socket() -> socket.socket:
    """A listening socket on 127.0.0.1, on a port the system chooses."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def serve(worker: VaultWorker, *, language: str, open_browser: bool) -> None:
    """Serve the UI until Ctrl-C or SIGTERM; the first line printed is the URL."""
    sock = loopback_socket()
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    app = create_app(worker, port=port, token=token, language=language)
    url = f"http://127.0.0.1:{port}/login?token={token}"
    asyncio.run(_serve(app, sock, url, open_browser))


async def _serve(app: web.Application, sock: socket.socket, url: str,
                 open_browser: bool) -> None:
    # No access log: the first URL holds the token, and every URL names a report.
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        print(url, flush=True)
        print("The triage UI is open at the address above (this machine only). "
              "Press Ctrl-C to stop it and lock the vault.", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if open_browser:
            await loop.run_in_executor(None, webbrowser.open, url)
        await stop.wait()
    finally:
        await runner.cleanup()
