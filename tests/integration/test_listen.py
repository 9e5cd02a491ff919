"""The real server listens on 127.0.0.1 only, and sends no Server banner, even to
requests it cannot parse."""

from __future__ import annotations

import socket
import urllib.request
from http import HTTPStatus

import pytest

from support.server_process import free_port


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
        assert resp.headers.get("Date") is None
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    addr = _outward_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((addr, server.port), timeout=2).close()


# Requests aiohttp cannot parse, each carrying a marker that must not come back.
_MARK = "zq7canary"
_MALFORMED = [
    f"{_MARK}\x01 / HTTP/1.1\r\nHost: x\r\n\r\n".encode(),  # no such method
    f"GET /{_MARK}\x00 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),  # NUL in the path
    f"GET / HTTP/1.1\r\nHost: x\r\n{_MARK} header\r\n\r\n".encode(),  # not a header
    f"GET / HTTP/1.1\r\nHost: x\r\nX-{_MARK}: {'a' * 20_000}\r\n\r\n".encode(),  # too long
    f"GET / HTTP/1.1\r\nHost: x\r\n{_MARK}\xff: y\r\n\r\n".encode("latin-1"),  # not UTF-8
]


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        out = b""
        while chunk := s.recv(65536):  # ends only if the server closes the connection
            out += chunk
    return out


def test_unparsable_requests_get_our_headers_and_no_echo(server) -> None:
    """aiohttp answers these before any application code runs; that answer used to
    carry `Server: Python/3.11 aiohttp/…` and echo the request, and an unknown Expect
    header was quoted back in a 417 (protocol_errors.py)."""
    for port in (server.port, server.staff_port):
        for raw in _MALFORMED:
            answer = _exchange(port, raw)
            head, _, body = answer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in lines[1:])}
            assert 400 <= status < 600, lines[0]
            assert "server" not in headers, (port, raw[:40], headers)
            assert "date" not in headers
            assert headers["content-security-policy"].startswith("default-src 'none'")
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["cache-control"] == "no-store"
            assert body == f"{status} {HTTPStatus(status).phrase}\n".encode()
            assert _MARK.encode() not in answer
    # An Expect header aiohttp does not know, on a route and on a 404, on both ports.
    for port, path in ((server.port, "/en/"), (server.port, "/nowhere"),
                       (server.staff_port, "/v1/health"), (server.staff_port, "/nowhere")):
        answer = _exchange(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nExpect: {_MARK}\r\n"
                                 "Connection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 417 "), answer[:40]
        assert _MARK.encode() not in answer
        assert b"\r\nServer:" not in answer
        assert b"\r\nDate:" not in answer
        assert b"\r\nX-Content-Type-Options: nosniff\r\n" in answer
    # "100-continue" still works: curl sends it before a large upload.
    answer = _exchange(server.port, b"POST /en/login HTTP/1.1\r\nHost: x\r\n"
                       b"Expect: 100-continue\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 "), answer[:60]
    # Nor in anything the server wrote.
    server.stop()
    for out in (server.stdout_path, server.stderr_path):
        assert _MARK.encode() not in out.read_bytes()


@pytest.mark.parametrize("same_dir", [False, True], ids=["port-taken", "dir-served"])
def test_a_second_server_says_what_is_wrong_in_one_line(server, tmp_path, same_dir) -> None:
    """`make run` twice: no traceback, one line that says what to do (issue 14)."""
    import subprocess
    import sys

    demo = server.demo_dir if same_dir else tmp_path / "second"
    # The same dir is refused even on free ports: the data directory is taken.
    port = free_port() if same_dir else server.port
    done = subprocess.run(
        [sys.executable, "-m", "intake_server", "demo", "--dir", str(demo),
         "--port", str(port), "--staff-port", str(free_port())],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    expected = "already serving" if same_dir else "already in use"
    assert line.startswith("intake-server: error: ")
    assert expected in line
