"""Generated hostile HTTP/1.1 requests, a raw-socket client to send many of them fast,
and the checks on what comes back and on what the server wrote (issue 18, "Malformed
input").

The strategies build requests byte by byte: methods, request targets with
percent-encodings, NUL bytes, overlong UTF-8, bidi and zero-width characters, header
shapes and sizes, duplicated and conflicting Content-Length and Transfer-Encoding,
multipart bodies with odd boundaries, dispositions and repeated fields, huge query
strings and cookies. Each request carries a marker token (``Mk`` + a run token + a
counter) in several places, so the server's output can be searched for every request.

Large values are a drawn unit repeated to a drawn size: Hypothesis draws the shape,
not 64 KiB of choices, so a batch of requests stays within its example budget.

Framing is kept honest so that no request leaves the server waiting for bytes that
never come (which would cost its 10 s head deadline, not find a bug): every declared
length is at most what is sent, chunked bodies end, and the few requests that declare
more than they send (``truncated``) half-close the socket after sending.
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")

# --- what a request may carry ------------------------------------------------------

# Bytes that have broken parsers: NUL, CR/LF inside values, overlong UTF-8 ("/" and
# NUL written in two and three bytes), a lone continuation byte, invalid lead bytes,
# UTF-8 of bidi overrides and isolates, zero-width characters, the BOM, a lone
# surrogate encoded as UTF-8 (CESU), and the Unicode line and paragraph separators.
HOSTILE_BYTES = (
    b"\x00", b"\r", b"\n", b"\r\n", b"\t", b"\x7f", b"\x1b[31m",
    b"\xc0\xaf", b"\xc0\x80", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\x80", b"\xff\xfe",
    b"\xed\xa0\x80",
    "\u202e".encode(), "\u202d".encode(), "\u2066".encode(), "\u2069".encode(),
    "\u061c".encode(), "\u200b".encode(), "\u200d".encode(), "\ufeff".encode(),
    "\u2028".encode(), "\u2029".encode(), "\uff0f".encode(), "ا".encode(), "é".encode(),
    b"..", b"/", b"\\", b"%", b";", b"=", b'"', b"'", b"<script>", b"{{7*7}}", b"${x}",
)
PERCENT = (
    "%00", "%2e%2e%2f", "%2E%2E/", "%2f", "%5c", "%c0%af", "%c0%80", "%e0%80%af", "%ff",
    "%e2%80%ae", "%e2%80%8b", "%ef%bb%bf", "%25", "%%", "%zz", "%", "%0d%0a", "%u202e",
    "%ed%a0%80", "%f4%90%80%80",
)
SIZES = (0, 1, 7, 100, 1000, 4095, 8189, 8190, 8191, 8192, 9000, 20_000, 70_000, 200_000)

SOURCE_PATHS = (
    "/", "/en", "/en/", "/ar/", "/fr/", "/en/submit", "/ar/submit", "/fr/submit",
    "/en/login", "/fr/login", "/en/inbox", "/en/inbox/delete", "/en/logout",
    "/ar/followup", "/en/followup", "/static/style.css", "/static/../app.py", "/xx/submit",
    "/en/submit/", "//en//submit", "/EN/submit", "/en/submit;x", "/favicon.ico", "*",
    "/static/", "/static/%2e%2e/%2e%2e/etc/passwd",
)
FORM_PATHS = ("/en/submit", "/ar/submit", "/fr/submit", "/fr/login", "/en/followup",
              "/ar/inbox/delete")
STAFF_PATHS = (
    "/v1/health", "/v1/desks/triage/bundle", "/v1/desks/triage/acks",
    "/v1/desks/triage/outbox", "/v1/desks/forensics/bundle", "/v1/desks/nobody/acks",
    "/v1/desks/../acks", "/v1/desks/triage/bundle?after=0", "/v1/", "/", "*",
    "/v1/desks/%74riage/acks",
)
METHODS = ("GET", "GET", "GET", "POST", "POST", "POST", "POST", "HEAD", "PUT", "DELETE",
           "OPTIONS", "PATCH", "TRACE", "CONNECT", "get", "PoSt", "PRI", "G\x00T",
           "POST ", "M" * 300, "BREW", "")
VERSIONS = ("HTTP/1.1",) * 12 + ("HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.1 ",
                                  "http/1.1", "HTTP/1.10", "HTTP/9.9", "HTCPCP/1.0", "")
HEADER_NAMES = (
    "Accept-Language", "User-Agent", "X-Forwarded-For", "Referer", "Origin", "Accept",
    "Expect", "Content-Encoding", "Authorization", "Range", "If-None-Match", "Upgrade",
    "Connection", "Host", "Content-Disposition", "X-Amana-Desk", "X-Amana-Signature",
    "X-Amana-Timestamp", "X-Amana-Nonce", "Sec-Fetch-Mode", "Forwarded", "Trailer",
    "Via", "Max-Forwards", "Transfer-Encoding", "Content-Length", "Content-Type",
    "Cookie", "X Bad", "X-Bad:", "X-\x00", " Leading", "X-Ünicode", "",
)
# Names a well-formed request may carry with any value: not the ones that frame the
# body or the connection, whose values the "broken" requests play with.
WELL_FORMED_NAMES = tuple(n for n in HEADER_NAMES[:-6] if n not in (
    "Transfer-Encoding", "Content-Length", "Connection", "Upgrade", "Expect", "Host",
    "Trailer"))
FIELD_NAMES = ("csrf", "category", "secondary", "country", "incident_date", "description",
               "links", "senders", "messages", "target", "profession", "platforms",
               "device_details", "desks", "consent_share", "consent_publish", "files",
               "codename", "reply", "followup", "unknown", "", "desks[]", "csrf\x00")
# Invalid on purpose: a complete valid report would cost a codename derivation (about
# a second of CPU) per example; the normal submission at the end covers the valid path.
CATEGORIES = ("", "spyware ", "SPYWARE", "x" * 300, "spyware\x00", "phishing\u202e")
DESKS = ("triage", "forensics", "nobody", "", "triage\x00", "TRIAGE", "../triage")
CONTENT_TYPES = (
    "multipart/form-data; boundary={b}", "multipart/form-data; boundary=\"{b}\"",
    "multipart/form-data; boundary={b}; boundary=other", "multipart/form-data",
    "multipart/form-data; boundary=", "multipart/mixed; boundary={b}",
    "MULTIPART/FORM-DATA; BOUNDARY={b}", "multipart/form-data; charset=utf-16; boundary={b}",
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
    "text/plain", "application/json", "application/octet-stream", "", ";;;", "a/b/c",
)
BOUNDARIES = (b"B", b"----WebKitFormBoundary7MA4YWxkTrZu0gW", b"x" * 70, b"x" * 71,
              b"b o u n d", b"\xff\xfe", b"--", b"=?utf-8?", b"a\x00b", "ا".encode(),
              b"\"quoted\"", b"B" * 2000)
DISPOSITIONS = (
    b'form-data; name="{n}"', b"form-data; name={n}", b'form-data; name="{n}"; name="x"',
    b'form-data; name="{n}"; filename="{m}.eml"', b'form-data; name="{n}"; filename=""',
    b"form-data; name=\"{n}\"; filename*=utf-8''%e2%80%ae{m}",
    b'form-data; name="{n}"; filename="../../{m}"', b'form-data; name="{n}"; filename="C:\\{m}"',
    b'attachment; name="{n}"', b"inline", b"", b'form-data; name="{n}', b'form-data;;name="{n}"',
    b'form-data; name="{n}"; filename="\xc0\xaf{m}\x00.txt"',
)
TRANSFER_ENCODINGS = ("chunked", "Chunked", "chunked, identity", "identity, chunked",
                      "gzip, chunked", "chunked\x00", " chunked", "x", "")


@dataclass(frozen=True)
class RawRequest:
    staff: bool  # to the staff app's port, else the source app's
    data: bytes
    marker: bytes
    # The client half-closes after sending: the request declares more than it sends,
    # so an answer is not owed (aiohttp drops a half-closed connection).
    truncated: bool = False
    # Another request may follow on the same connection.
    keep_alive: bool = True
    head: bool = False  # a HEAD: the answer has no body whatever it declares
    has_body: bool = False

    def __repr__(self) -> str:
        # Hypothesis prints a failing batch: a few hundred bytes of each is enough.
        cut = self.data[:400] + (b"..." if len(self.data) > 400 else b"")
        return f"RawRequest(staff={self.staff}, {len(self.data)} bytes: {cut!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass
class Markers:
    """Hands out the markers of a run: ``Mk`` + a random run token + a counter."""

    run: str
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: list[bytes] = field(default_factory=list)

    def next(self) -> bytes:
        with self.lock:
            self.count += 1
            mark = f"Mk{self.run}{self.count:07d}".encode()
            self.issued.append(mark)
        return mark


class _Choices(Protocol):
    def int(self, low: int, high: int) -> int: ...
    def binary(self, max_size: int) -> bytes: ...


class _Drawn:
    """Choices drawn by Hypothesis, each one shrinkable: the shape of a request."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def int(self, low: int, high: int) -> int:
        # One strategy per range, built once: building strategies inside every draw
        # cost more than sending the request.
        strategy = _INTEGERS.get((low, high))
        if strategy is None:
            strategy = _INTEGERS[low, high] = st.integers(low, high)
        return self.draw(strategy)

    def binary(self, max_size: int) -> bytes:
        return self.draw(st.binary(max_size=max_size))


class _Seeded:
    """Choices from a generator Hypothesis seeds (``st.randoms``): the details of a
    request. Replayed exactly from the same seed, shrunk only as a whole; a draw each
    would have made generating the requests slower than sending them."""

    def __init__(self, rnd: Any) -> None:
        self.rnd = rnd

    def int(self, low: int, high: int) -> int:
        return int(self.rnd.randint(low, high))

    def binary(self, max_size: int) -> bytes:
        return bytes(self.rnd.randbytes(self.rnd.randint(0, max_size)))


_INTEGERS: dict[tuple[int, int], st.SearchStrategy[int]] = {}
_RANDOMS = st.randoms(use_true_random=True)


def _pick(c: _Choices, options: Sequence[T]) -> T:
    """One of ``options``; shrinks towards the first."""
    return options[c.int(0, len(options) - 1)]


# Control characters no well-formed header value holds (tab is allowed).
_CTL = bytes(range(9)) + bytes(range(10, 32)) + b"\x7f"


def _sized(unit: bytes, size: int) -> bytes:
    unit = unit or b"a"
    return (unit * (size // len(unit) + 1))[:size]


def _noise(c: _Choices, marker: bytes) -> bytes:
    """A short string of hostile bytes around the marker."""
    parts = [_pick(c, HOSTILE_BYTES) if c.int(0, 2) else c.binary(6)
             for _ in range(c.int(0, 4))]
    at = c.int(0, len(parts))
    return b"".join(parts[:at]) + marker + b"".join(parts[at:])


def _target(c: _Choices, staff: bool, marker: bytes, broken: bool, form: bool) -> bytes:
    # Half the source requests go to the forms, where the multipart parser is.
    # A form body goes to a form three times in four, other requests half the time:
    # the multipart parser and the checks behind the CSRF token are there.
    to_form = c.int(0, 3) > 0 if form else c.int(0, 1) == 0
    paths = STAFF_PATHS if staff else FORM_PATHS if to_form else SOURCE_PATHS
    path = _pick(c, paths).encode()
    how = _pick(c, ("plain", "plain", "plain", "plain", "suffix", "percent", "raw", "query",
                    "huge-query", "fragment", "absolute"))
    if how == "suffix":
        path = path.rstrip(b"/") + b"/" + marker
    elif how == "percent":
        before = [_pick(c, PERCENT) for _ in range(c.int(1, 4))]
        after = [_pick(c, PERCENT) for _ in range(c.int(0, 3))]
        path += b"/" + "".join(before).encode() + marker + "".join(after).encode()
    elif how == "raw":
        noise = _noise(c, marker)
        path += b"/" + (noise if broken else urllib.parse.quote_from_bytes(noise).encode())
    elif how in ("query", "huge-query"):
        size = _pick(c, SIZES) if how == "huge-query" else 0
        key = _pick(c, ([b"ended", b"after", b"lang", b"a", b"", b"a[]", b"%00"]))
        unit = _pick(c, ([b"x", b"%ff", b"&a=b", b"a=" + marker + b"&",
                                     "\u202e".encode(), b"%e2%80%8b", b"\x00"]))
        path += b"?" + key + b"=" + marker + _sized(unit, size)
    elif how == "fragment":
        path += b"#" + marker
    elif how == "absolute":
        path = b"http://" + marker + b".onion" + path
    if how == "plain":
        path += b"?m=" + marker
    return path


def _header_lines(c: _Choices, marker: bytes, csrf_cookie: str, broken: bool
                  ) -> list[bytes]:
    lines = []
    for _ in range(c.int(0, 4)):
        name = _pick(c, HEADER_NAMES if broken else WELL_FORMED_NAMES).encode()
        value = _noise(c, marker) if broken else _noise(c, marker).translate(None, _CTL)
        # Oversized values (past aiohttp's 8190-byte line limit, mostly) are rarer in
        # well-formed requests: most of those should reach the application.
        if c.int(0, 5 if broken else 15) == 0:
            value += _sized(_pick(c, ([b"a", b"\xe2\x80\x8b", b"; x=y"])),
                            _pick(c, SIZES))
        sep = _pick(c, (b": ", b":", b" : ", b":\t", b": \r\n ", b"::") if broken else (b": ",))
        lines.append(name + sep + value)
    cookie = _pick(c, ("valid", "valid", "valid", "none", "wrong", "huge", "many"))
    if cookie == "valid":
        lines.append(f"Cookie: amana_csrf={csrf_cookie}; note=".encode() + marker)
    elif cookie == "wrong":
        lines.append(b"Cookie: amana_csrf=" + marker + b"; amana_session=" + marker)
    elif cookie == "huge":
        lines.append(b"Cookie: amana_session=" + marker + _sized(
            b"%ff;=", _pick(c, SIZES)))
    elif cookie == "many":
        lines += [b"Cookie: a" + str(i).encode() + b"=" + marker for i in range(
            c.int(2, 60))]
    return lines


def _multipart(c: _Choices, marker: bytes, csrf_token: str) -> tuple[bytes, bytes]:
    """A multipart body and the boundary its Content-Type should announce."""
    boundary = _pick(c, BOUNDARIES)
    # The token first, well-formed, in most forms: so that they pass the CSRF check
    # (with the right cookie) or fail it (403), and the parts after it are parsed.
    token = _pick(c, (csrf_token.encode(), csrf_token.encode(), marker, b""))
    body = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'
    body = body + token + b"\r\n" if token else b""
    parts = []
    for _ in range(c.int(0, 6)):
        name = _pick(c, FIELD_NAMES)
        disposition = _pick(c, DISPOSITIONS).replace(
            b"{n}", name.encode()).replace(b"{m}", marker)
        if name == "category":
            value = _pick(c, CATEGORIES).encode()
        elif name == "desks":
            value = _pick(c, DESKS).encode()
        else:
            value = _noise(c, marker)
            if c.int(0, 4) == 0:
                value += _sized(_pick(c, HOSTILE_BYTES), _pick(c, SIZES))
        parts.append((disposition, value))
    for disposition, value in parts:
        extra = _pick(c, ([b"", b"", b"\r\nContent-Type: " + marker,
                                      b"\r\nContent-Type: multipart/mixed; boundary=Z",
                                      b"\r\nContent-Transfer-Encoding: base64",
                                      b"\r\nContent-Encoding: gzip", b"\r\nX: " + marker,
                                      b"\r\n" + marker]))
        delimiter = _pick(c, ([b"\r\n", b"\r\n", b"\n", b""]))
        head = b"Content-Disposition: " + disposition if disposition else b""
        body += b"--" + boundary + delimiter + head + extra + b"\r\n\r\n" + value + b"\r\n"
    ending = _pick(c, ([b"--" + boundary + b"--\r\n", b"--" + boundary + b"--",
                                   b"--" + boundary + b"\r\n", b"", b"--" + boundary + b"--x",
                                   b"--" + boundary + b"--\r\n" + marker]))
    return body + ending, boundary


def _chunked(body: bytes, sizes: Iterable[int], bad: bytes) -> bytes:
    out, at = b"", 0
    for size in sizes:
        if at >= len(body):
            break
        piece = body[at:at + max(size, 1)]
        out += f"{len(piece):x}".encode() + b"\r\n" + piece + b"\r\n"
        at += len(piece)
    if at < len(body):
        out += f"{len(body) - at:x}".encode() + b"\r\n" + body[at:] + b"\r\n"
    return out + bad + b"0\r\n\r\n"


@st.composite
def requests(draw: st.DrawFn, markers: Markers, csrf_cookie: str, csrf_token: str
             ) -> RawRequest:
    """One hostile request to either app."""
    marker = markers.next()
    d = _Drawn(draw)  # the shape: which app, method, version, body and framing
    c = _Seeded(draw(_RANDOMS))  # the details
    # A third of the requests break HTTP itself (aiohttp's parser answers them); the
    # rest are well-formed HTTP with hostile content, and reach the applications.
    broken = d.int(0, 2) == 2
    staff = d.int(0, 3) == 0
    kind = _pick(d, ("none", "multipart", "multipart", "urlencoded", "raw"))
    if broken:
        method = _pick(d, METHODS)
        version = _pick(d, VERSIONS)
        framing = _pick(d, ("length", "none", "chunked", "bad-chunked", "length+chunked",
                            "two-lengths", "short-length", "odd-length", "odd-te",
                            "truncated"))
        end = _pick(d, (b"\r\n", b"\n", b"\r\n\x00"))
        line_sep = _pick(c, (b" ", b"  ", b"\t", b" \x00"))
    else:
        method = _pick(d, ("GET", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"))
        if kind in ("multipart", "urlencoded") and d.int(0, 3) > 0:
            method = "POST"
        version = _pick(d, ("HTTP/1.1", "HTTP/1.0"))
        framing = _pick(d, ("length", "length", "none", "chunked"))
        end, line_sep = b"\r\n", b" "
    target = _target(c, staff, marker, broken, form=kind in ("multipart", "urlencoded"))
    lines = [b"Host: " + _pick(c, ([b"127.0.0.1", b"x.onion", marker, b""]))]
    lines += _header_lines(c, marker, csrf_cookie, broken)

    body = b""
    if kind == "multipart":
        body, boundary = _multipart(c, marker, csrf_token)
        ctype = _pick(c, CONTENT_TYPES[:1] * 8 + CONTENT_TYPES).encode().replace(
            b"{b}", boundary)
        lines.append(b"Content-Type: " + ctype)
    elif kind == "urlencoded":
        fields = [(_pick(c, FIELD_NAMES), _noise(c, marker))
                  for _ in range(c.int(0, 5))]
        if _pick(c, (False, True)):
            fields.insert(0, ("csrf", csrf_token.encode()))
        body = b"&".join(n.encode() + b"=" + v for n, v in fields)
        lines.append(b"Content-Type: " + _pick(c, CONTENT_TYPES).encode())
    elif kind == "raw":
        body = _noise(c, marker) + _sized(c.binary(6), _pick(c, SIZES))

    if not broken and framing == "none" and body:
        framing = "length"  # a body with no length is not well-formed HTTP
    truncated = False
    # Another request may follow only when the framing is unambiguous.
    keep_alive = framing in ("length", "chunked") or (framing == "none" and not body)
    if framing in ("length", "short-length", "two-lengths", "truncated"):
        declared = len(body)
        if framing == "short-length":
            declared = c.int(0, max(len(body) - 1, 0))
        elif framing == "truncated":
            declared = len(body) + c.int(1, 100_000)
            truncated = True
        lines.append(b"Content-Length: " + str(declared).encode())
        if framing == "two-lengths":
            other = _pick(c, ([declared, max(declared - 1, 0), 0]))
            lines.append(b"Content-Length: " + str(other).encode())
    elif framing == "odd-length":
        lines.append(b"Content-Length: " + _pick(c, (
            [b"-1", b"+5", b"0x10", b" 0", b"1e3", b"0, 0", b"\xd9\xa1", b"99999999999999999999",
             b"", b"0\x00"])))
    elif framing in ("chunked", "bad-chunked", "length+chunked", "odd-te"):
        sizes = [c.int(1, 5000) for _ in range(c.int(0, 4))]
        bad = b"" if framing != "bad-chunked" else _pick(c, (
            [b"zz\r\nab\r\n", b"1;ext=" + marker + b"\r\nx\r\n", b"-1\r\n", b"1\r\nxx\r\n",
             b"ffffffffffffffffff\r\n", b"1\nx\n"]))
        chunked = _chunked(body, sizes, bad)
        te = b"chunked" if framing in ("chunked", "bad-chunked") else _pick(
            c, TRANSFER_ENCODINGS).encode()
        lines.append(b"Transfer-Encoding: " + te)
        if framing == "length+chunked":
            lines.append(b"Content-Length: " + str(c.int(0, len(chunked))).encode())
        body = chunked
    if not keep_alive or c.int(0, 9) == 0:
        lines.append(b"Connection: close")
        keep_alive = False
    # Header order is part of the shape: shuffle after the Host line.
    for i in range(len(lines) - 1, 1, -1):
        j = c.int(1, i)
        lines[i], lines[j] = lines[j], lines[i]
    if broken or version != "HTTP/1.1":
        keep_alive = False
    head = method.encode() + line_sep + target + line_sep + version.encode() + end
    head += b"".join(line + end for line in lines) + end
    return RawRequest(staff=staff, data=head + body, marker=marker, truncated=truncated,
                      keep_alive=keep_alive, head=method == "HEAD", has_body=bool(body))


# --- sending --------------------------------------------------------------------------

# aiohttp answers in the version the request named, "HTTP/0.9" and "HTTP/2.0" included.
_STATUS = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3}) ")


@dataclass
class Answer:
    request: RawRequest
    status: int | None  # None: the server closed without answering
    raw: bytes
    # The server closed while the request was still being sent (it had answered,
    # or refused, before reading the whole body): its answer may be lost.
    cut_off: bool = False


class _Conn:
    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _more(self) -> bool:
        try:
            chunk = self.sock.recv(262144)
        except ConnectionResetError:
            chunk = b""
        self.buf += chunk
        return bool(chunk)

    def read_answer(self, head_only: bool) -> tuple[bytes, bool]:
        """One response (skipping 1xx), and whether the connection can be reused."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._more():
                    raw, self.buf = self.buf, b""
                    return raw, False
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            match = _STATUS.match(head)
            if match and match.group(1).startswith(b"1"):
                self.buf = rest
                continue
            break
        length = re.search(rb"\r\ncontent-length: *([0-9]+)", head, re.I)
        chunked = re.search(rb"\r\ntransfer-encoding: *chunked", head, re.I)
        closing = re.search(rb"\r\nconnection: *close", head, re.I) is not None
        if head_only:
            self.buf = rest
            return head + b"\r\n\r\n", not closing
        if length is not None:
            size = int(length.group(1))
            while len(rest) < size and self._more():
                rest = self.buf.partition(b"\r\n\r\n")[2]
            self.buf = rest[size:]
            return head + b"\r\n\r\n" + rest[:size], not closing
        if chunked is not None:
            while not rest.endswith(b"0\r\n\r\n") and self._more():
                rest = self.buf.partition(b"\r\n\r\n")[2]
            self.buf = b""
            return head + b"\r\n\r\n" + rest, not closing
        while self._more():
            pass
        raw, self.buf = self.buf, b""
        return raw, False


class Sender:
    """Sends requests over ``workers`` parallel connections per app, reusing each
    connection while the requests allow (keep-alive)."""

    def __init__(self, port: int, staff_port: int, workers: int = 6,
                 timeout: float = 30.0) -> None:
        self.ports = (port, staff_port)
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(workers)
        self.workers = workers
        self.local = threading.local()

    def close(self) -> None:
        self.pool.shutdown()

    def _send(self, req: RawRequest) -> Answer:
        conns: dict[bool, _Conn] = self.local.__dict__.setdefault("conns", {})
        for attempt in range(2):
            conn = conns.pop(req.staff, None)
            reused = conn is not None
            if conn is None:
                conn = _Conn(self.ports[req.staff], self.timeout)
            cut_off = False
            try:
                conn.sock.sendall(req.data)
                if req.truncated:
                    conn.sock.shutdown(socket.SHUT_WR)
            except OSError:  # the server closed first: reset, broken pipe, not connected
                cut_off = True
            try:
                raw, reusable = conn.read_answer(req.head)
            except OSError:
                raw, reusable = b"", False
            # A handler may answer without reading the body (a page to a GET with a
            # body, a refusal), and aiohttp then reads what is left of it as the next
            # request: connections are kept only after requests without a body.
            if reusable and req.keep_alive and not req.has_body and not conn.buf:
                conns[req.staff] = conn
            else:
                conn.close()
            # A kept connection the server had closed meanwhile: send again, fresh.
            if raw or not reused or attempt:
                break
        match = _STATUS.match(raw)
        return Answer(req, int(match.group(1)) if match else None, raw, cut_off)

    def send(self, batch: list[RawRequest]) -> list[Answer]:
        per = [batch[i::self.workers] for i in range(self.workers)]
        out: list[Answer] = []
        for answers in self.pool.map(lambda reqs: [self._send(r) for r in reqs], per):
            out += answers
        return out


# --- checks ---------------------------------------------------------------------------

# What no answer may carry: a traceback, a file or module name, a software banner.
INTERNAL = (b"Traceback", b'File "', b".py", b"aiohttp", b"Python/", b"intake_server",
            b"sqlite", b"Exception", b"\r\nServer:", b"\r\nDate:")


def answer_problems(answer: Answer, root: Path) -> list[str]:
    """What is wrong with one answer (empty when nothing is)."""
    req = answer.request
    if answer.status is None:
        if answer.raw or not (req.truncated or not req.keep_alive or answer.cut_off):
            return [f"no valid answer: {answer.raw[:120]!r}"]
        return []
    problems = []
    if answer.status >= 500:
        problems.append(f"status {answer.status}")
    problems += [f"answer carries {needle!r}" for needle in
                 (*INTERNAL, str(root).encode()) if needle in answer.raw]
    return problems


# Every line the server writes: its own start-up lines on stdout, and log records
# "LEVEL logger: message" on stderr.
LOG_LINE = re.compile(rb"(INFO|WARNING|ERROR) intake_server(\.[a-z_]+)*: [ -~]+")
STDOUT_LINE = re.compile(rb"(Demo installation in .*|Amana (intake server|staff app) "
                         rb"listening on http://127\.0\.0\.1:[0-9]+/)")


def marker_needles(mark: bytes) -> tuple[bytes, ...]:
    """The forms a marker could take in the output: raw, hex, UTF-16."""
    return mark, mark.hex().encode(), mark.decode().encode("utf-16-le")


def output_problems(stdout: bytes, stderr: bytes, markers: Iterable[bytes]) -> list[str]:
    """Markers found in the server's output, and lines of a shape it never writes
    (a traceback, a warning printed by a library, an internal error)."""
    problems = []
    both = stdout + b"\n" + stderr
    # The cheap test first: most output holds no marker's prefix in any form.
    if any(n in both for n in marker_needles(b"Mk")):
        problems += [f"marker {m.decode()} in the output" for m in markers
                     if any(n in both for n in marker_needles(m))]
    problems += [f"stderr line {line[:160]!r}" for line in stderr.splitlines()
                 if not LOG_LINE.fullmatch(line) or b"internal error" in line]
    problems += [f"stdout line {line[:160]!r}" for line in stdout.splitlines()
                 if not STDOUT_LINE.fullmatch(line)]
    return problems
