"""What fetch and push share about the connection to the server's staff onion.

The server is the other side: its URL is checked before anything is sent, an onion
address is only ever resolved by Tor, and what it answers is bounded and made inert
before it can reach a terminal.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import aiohttp

from journalist_client.display import inert
from journalist_client.online.credential import TransferError

__all__ = ["base_url", "connector", "server_said"]

_MAX_ANSWER: Final = 4096


async def server_said(resp: aiohttp.ClientResponse) -> str:
    """What the server said, bounded and made inert: it is shown on a terminal, and a
    compromised server could otherwise rewrite the screen with escape sequences."""
    raw = await resp.content.read(_MAX_ANSWER)
    return inert(raw.decode("utf-8", "replace"))


def connector(tor_socks: str | None) -> aiohttp.BaseConnector | None:
    """Tor's SOCKS port as the way out, or None for a direct (loopback) connection."""
    if not tor_socks:
        return None
    from aiohttp_socks import ProxyConnector

    host, _, port = tor_socks.rpartition(":")
    if not host or not port.isdigit():
        raise TransferError("--tor-socks takes HOST:PORT, for example 127.0.0.1:9050")
    # rdns: the .onion name is resolved by Tor, never by the local resolver.
    return ProxyConnector.from_url(f"socks5://{host}:{port}", rdns=True)


def base_url(server: str, tor_socks: str | None) -> str:
    """``scheme://host:port`` of ``--server``; anything with a path or query is refused."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise TransferError(f"--server must look like http://HOST:PORT, not {server!r}")
    if (parts.hostname or "").endswith(".onion") and not tor_socks:
        # Without Tor the system resolver would be asked for the onion name: a leak of
        # the staff onion's address, and no connection anyway.
        raise TransferError(
            "an .onion server needs --tor-socks (Tor's SOCKS port, for example 127.0.0.1:9050)"
        )
    return f"{parts.scheme}://{parts.netloc}"
