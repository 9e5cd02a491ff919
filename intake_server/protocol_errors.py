"""Answers to requests that never reach the application.

aiohttp answers a request it cannot parse (a malformed request line, a bad or
oversized header) before any application code runs: no
middleware and no ``on_response_prepare`` sees it. Left alone, that answer named the
software and its version (``Server: Python/3.11 aiohttp/3.14.5``), which fingerprints
the onion service, carried none of our security headers, and echoed the offending
bytes back in its body. aiohttp has no hook for it (aio-libs/aiohttp#3287, #6463).

``install()`` therefore replaces ``RequestHandler.handle_error``, the one method that
builds those answers (aiohttp also uses it for an exception that escapes every
middleware, which ours never let happen). The replacement answers with the status
code and its standard phrase only, the same security headers as every other page, no
Server header, and closes the connection; it logs nothing about the request.

It also replaces aiohttp's default handler for the ``Expect`` header, which runs
before any middleware too and answered an unknown expectation with a 417 quoting it.

The tests send malformed requests to real servers to pin both, so an aiohttp upgrade
that moves either fails them rather than quietly bringing the banner or the echo
back.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import HttpVersion11, hdrs, web, web_protocol, web_urldispatcher
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


# Headers a response never carries. Server: a version banner helps an attacker pick
# an exploit and fingerprints the onion service as this software. Date: the server's
# clock to the second, from which an observer can measure its skew over the onion
# service and compare it with candidate machines (Zander and Murdoch, "An Improved
# Clock-skew Measurement Technique for Revealing Hidden Services", USENIX Security
# 2008; Tor stopped sending timestamps for the same reason, proposal 222). RFC 9110
# lets an origin server without a reliable clock omit Date; every response here is
# no-store, so no cache needs it. Last-Modified and ETag: aiohttp's FileResponse
# derives them from a file's mtime (ETag to the nanosecond), the same clock again.
_NEVER_SENT = frozenset({"server", "date", "last-modified", "etag"})


class _QuietHeaders(CIMultiDict[str]):
    """aiohttp adds Server with setdefault() and Date with item assignment, after the
    application's last say on some paths: refuse them (and the others above)."""

    def setdefault(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if key.lower() in _NEVER_SENT:
            return None
        return super().setdefault(key, default)  # type: ignore[arg-type]

    def __setitem__(self, key: str, value: str) -> None:
        if key.lower() not in _NEVER_SENT:
            super().__setitem__(key, value)


def secure(response: web.StreamResponse, headers: dict[str, str] = SECURITY_HEADERS) -> None:
    """Give a response our security headers, and none of _NEVER_SENT whenever
    aiohttp would add them (before or after on_response_prepare)."""
    response._headers = _QuietHeaders(response.headers)  # noqa: SLF001
    for name in _NEVER_SENT:
        response.headers.popall(name, None)
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


async def _expect_handler(request: web.BaseRequest) -> None:
    # aiohttp's default, except that an expectation it does not know gets a bare 417
    # (with our headers, from on_response_prepare) instead of one quoting it back.
    # "100-continue" is answered as aiohttp does: curl sends it before large uploads.
    if request.version != HttpVersion11:
        return
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        raise web.HTTPExpectationFailed()
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    # As aiohttp's: the 100 is not the response, which has not started yet.
    request.writer.output_size = 0


def install() -> None:
    """Replace aiohttp's answers to unparsable requests and to unknown ``Expect``
    headers, for this whole process. Call before adding routes: a route takes the
    default Expect handler when it is created (the 404 and 405 routes, per request)."""
    web_protocol.RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
    web_urldispatcher._default_expect_handler = _expect_handler  # noqa: SLF001
