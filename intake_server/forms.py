"""Forms: the CSRF token (a cookie and a field that must match) and small url-encoded forms.

The token is random (secrets), 43 URL-safe characters, compared in constant time. The
cookie is SameSite=Strict, so another site cannot make the browser send it. Multipart
bodies (the report and the follow-up) are read by upload.py, part by part.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import urllib.parse

from aiohttp import web

from . import report as rpt
from .report import FormError

__all__ = [
    "CSRF_COOKIE",
    "MAX_SMALL_FORM",
    "csrf_matches",
    "csrf_token",
    "read_small_form",
    "set_csrf_cookie",
]

CSRF_COOKIE = "amana_csrf"
# The login, delete and logout forms are a few short fields.
MAX_SMALL_FORM = 8 * 1024


def csrf_token(request: web.Request) -> str:
    """The browser's token if it has a well-formed one, else a new one."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token
    return secrets.token_urlsafe(32)


def set_csrf_cookie(resp: web.StreamResponse, token: str) -> None:
    # SameSite=Strict: another site cannot make the browser send it. HttpOnly: no
    # script could read it anyway (there is none), but it costs nothing.
    resp.set_cookie(CSRF_COOKIE, token, path="/", httponly=True, samesite="Strict")


def csrf_matches(secret: str, given: str) -> bool:
    """A CSRF token check: constant-time, and never true for an empty secret."""
    return bool(secret) and hmac.compare_digest(secret.encode("utf-8", "replace"),
                                                given.encode("utf-8", "replace"))


async def read_small_form(request: web.Request, names: frozenset[str], *,
                          timeout: float) -> dict[str, str]:
    """A url-encoded form with exactly ``names``, each once; anything else is 400.

    Only url-encoded bodies are read this way: aiohttp's request.post() would spool a
    multipart body's files to a temporary file, which must never happen here.
    """
    if request.content_type != "application/x-www-form-urlencoded":
        raise FormError(400, rpt.R_MALFORMED)
    if request.content_length is None or request.content_length > MAX_SMALL_FORM:
        raise FormError(413, rpt.R_MALFORMED)
    try:
        # read(n) may return a partial chunk; the declared length is what we wait for.
        async with asyncio.timeout(timeout):
            body = await request.content.readexactly(request.content_length)
    except (asyncio.IncompleteReadError, TimeoutError):
        raise FormError(400, rpt.R_MALFORMED) from None
    try:
        pairs = urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True,
                                       strict_parsing=bool(body), encoding="utf-8",
                                       errors="strict", max_num_fields=len(names))
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, rpt.R_MALFORMED) from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name not in names or name in fields:
            raise FormError(400, rpt.R_MALFORMED)
        fields[name] = value
    if set(fields) != names:
        raise FormError(400, rpt.R_MALFORMED)
    return fields
