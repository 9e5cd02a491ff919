"""Answers to requests that never reach the application.

aiohttp answers a request it cannot parse (a malformed request line, a bad or
oversized header, a broken chunked body) before any application code runs: no
middleware and no ``on_response_prepare`` sees it. Left alone, that answer named the
software and its version (``Server: Python/3.11 aiohttp/3.14.5``), which fingerprints
the onion service, carried none of our security headers, and echoed the offending
bytes back in its body. aiohttp has no hook for it (aio-libs/aiohttp#3287, #6463).

``install()`` therefore replaces ``RequestHandler.handle_error``, the one method that
builds those answers (aiohttp also uses it for an exception that escapes every
middleware, which ours never let happen). The replacement answers with the status
code and its standard phrase only, the same security headers as every other page, no
Server header, and closes the connection; it logs nothing about the request. The
tests send malformed requests to real servers to pin this, so an aiohttp upgrade
that moves the method fails them rather than quietly bringing the banner back.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web, web_protocol
from multidict import CIMultiDict

__all__ = ["SECURITY_HEADERS", "install", "secure"]

log = logging.getLogger("intake_server")

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": (
        "accelerometer=(), ambient-light-sensor=(), autoplay=(), battery=(), camera=(), "
        "display-capture=(), document-domain=(), encrypted-media=(), fullscreen=(), "
        "geolocation=(), gyroscope=(), interest-cohort=(), magnetometer=(), microphone=(), "
        "midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), "
        "screen-wake-lock=(), serial=(), usb=(), web-share=(), xr-spatial-tracking=()"),
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}


class _HeadersWithoutServer(CIMultiDict[str]):
    """aiohttp adds "Server: Python/x aiohttp/y" with setdefault(); refuse it.

    A version banner helps an attacker pick an exploit and fingerprints the onion
    service as this software.
    """

    def setdefault(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if key.lower() == "server":
            return None
        return super().setdefault(key, default)  # type: ignore[arg-type]


def secure(response: web.StreamResponse, headers: dict[str, str] = SECURITY_HEADERS) -> None:
    """Give a response our security headers and make sure it gets no Server header,
    whenever aiohttp adds its default (before or after on_response_prepare)."""
    response._headers = _HeadersWithoutServer(response.headers)  # noqa: SLF001
    response.headers.popall("Server", None)
    response.headers.update(headers)


def _handle_error(
    self: web_protocol.RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    if request.writer.output_size > 0:
        # As aiohttp's own: part of a response is out, so the connection is broken.
        raise ConnectionError("a response was already started")
    if status >= 500:
        # By type only: an exception's text may quote the request.
        log.error("request failed outside the application: %s",
                  type(exc).__name__ if exc is not None else "unknown")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    response = web.Response(status=status, text=f"{status} {reason}\n",
                            content_type="text/plain", charset="utf-8")
    secure(response)
    response.force_close()
    return response


def install() -> None:
    """Replace aiohttp's answer to unparsable requests, for this whole process."""
    web_protocol.RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
