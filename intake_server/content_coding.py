"""Request bodies are taken as sent: any Content-Encoding but identity is refused.

aiohttp inflates a request body declared ``gzip`` or ``deflate`` as it arrives, below
the application. Every limit of the upload then measured the wrong thing: the declared
length was the compressed one (a 65 KB request stored a 64 MiB ciphertext, and about
50 MB over Tor would fill the default quota), the pace floor counted inflated bytes (a
gzip body at 4 B/s kept an upload slot where the same pace uncompressed got 408), and
a body declared gzip that was not gzip was a 500. No browser compresses a form it
sends, so nothing real is lost by refusing.

Two layers, each enough on its own for what it covers:

- ``refuse_content_codings``: a middleware, first after each app's error handling, that
  answers any request declaring a coding other than ``identity`` before a handler runs,
  and so before a byte of its body is read (415, the connection closed);
- the server's runners are created with ``auto_decompress=False`` (``__main__``), so
  that aiohttp does not inflate what arrives in the buffers before the middleware
  answers: every limit counts the bytes on the wire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

__all__ = ["is_identity", "refuse_content_codings"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_identity(request: web.BaseRequest) -> bool:
    """True if the request declares no content coding, or only ``identity``.

    Strict: every comma-separated token of every Content-Encoding header must be
    ``identity`` (case-insensitive, as RFC 9110 says codings are); an empty value is
    refused too, since no client that means "none" sends one.
    """
    return all(token.strip().lower() == "identity"
               for value in request.headers.getall(hdrs.CONTENT_ENCODING, ())
               for token in value.split(","))


def refuse_content_codings(
    refusal: Callable[[web.Request], web.StreamResponse],
) -> Middleware:
    """A middleware answering ``refusal(request)`` to a request whose body is coded.

    The body is not read, so the connection is closed after the answer: what the client
    still sends must not be taken for the next request.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_identity(request):
            return await handler(request)
        response = refusal(request)
        response.force_close()
        return response

    return middleware
