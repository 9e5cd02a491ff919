"""The real server listens on 127.0.0.1 only, and sends no Server banner."""

from __future__ import annotations

import socket
import urllib.request

import pytest


def _outward_address() -> str | None:
    # A UDP "connect" picks the outgoing interface without sending a packet.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_listens_on_loopback_only(server) -> None:
    with urllib.request.urlopen(f"{server.url}/en/", timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
        assert resp.headers.get("Server") is None
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    addr = _outward_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((addr, server.port), timeout=2).close()
