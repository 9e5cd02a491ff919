"""Ten thousand generated hostile requests against both apps of the real server process
(issue 18, "Malformed input"); 100,000 under `make soak` (AMANA_FUZZ_REQUESTS).

tests/integration/test_hostile_requests.py holds the hand-written cases, each for a bug
that was found; this file generates the rest (tests/support/http_fuzz.py: methods,
request targets and percent-encodings, header shapes and sizes, duplicated and
conflicting Content-Length and Transfer-Encoding, multipart boundaries, dispositions
and repeated fields, NUL bytes, overlong UTF-8, bidi and zero-width characters, huge
query strings and cookies) and sends them over raw sockets, several connections in
parallel, kept alive where the request allows.

Every answer: no 5xx, no traceback, file name, module or software banner. The server's
stdout and stderr: no request's marker (raw, hex or UTF-16), and no line of a shape it
does not write. Afterwards the server still takes a normal report, which the reference
`age` binary decrypts.

Replay: the run prints ``AMANA_FUZZ_SEED=N``; run again with that variable set to get
the same requests (docs/testing.md). Hypothesis also keeps a failing example in
.hypothesis/ and replays it first.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import secrets
import socket
import subprocess
from pathlib import Path

import aiohttp
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from support.http_fuzz import (
    Answer,
    Markers,
    RawRequest,
    Sender,
    answer_problems,
    output_problems,
    requests,
)
from support.server_process import ServerProcess, report_document

REQUESTS = int(os.environ.get("AMANA_FUZZ_REQUESTS", "10000"))
SEED = int(os.environ.get("AMANA_FUZZ_SEED") or secrets.randbelow(2**32))
BATCH = 50  # requests per Hypothesis example, sent in parallel
# Shrinking a failing batch against a live server takes minutes: off unless asked for.
# A failure names its requests anyway, and the seed replays them.
PHASES = tuple(Phase) if os.environ.get("AMANA_FUZZ_SHRINK") == "1" else tuple(
    p for p in Phase if p is not Phase.shrink)


def _csrf_pair(port: int) -> tuple[str, str]:
    """A CSRF cookie and its form token, so that generated forms get past the first
    part and into the multipart parser."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /en/submit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        page = b""
        while chunk := s.recv(65536):
            page += chunk
    cookie = re.search(rb"Set-Cookie: amana_csrf=([^;]+);", page)
    token = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert cookie, page[:300]
    assert token, page[:300]
    return cookie.group(1).decode(), token.group(1).decode()


async def _normal_report(server: ServerProcess) -> None:
    async with server.session() as s:
        csrf = await server.csrf(s, "ar")
        data = aiohttp.FormData(quote_fields=False)
        for name, value in [("csrf", csrf), ("category", "spyware"),
                            ("description", "after the storm"), ("desks", "triage")]:
            data.add_field(name, value)
        data.add_field("files", b"evidence \x00\xff" * 1000, filename="e.bin",
                       content_type="application/octet-stream")
        async with s.post("/ar/submit", data=data) as resp:
            assert resp.status == 200


def _read_from(path: os.PathLike[str], offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


def test_generated_requests_never_break_either_app(server: ServerProcess, age_binary: str
                                                   ) -> None:
    print(f"AMANA_FUZZ_SEED={SEED} AMANA_FUZZ_REQUESTS={REQUESTS}")
    cookie, token = _csrf_pair(server.port)
    # The markers follow from the seed too, so a replay sends the very same bytes.
    markers = Markers(f"{SEED:08x}")
    sender = Sender(server.port, server.staff_port)
    statuses: collections.Counter[int | None] = collections.Counter()
    seen = {"stdout": server.stdout_path.stat().st_size,
            "stderr": server.stderr_path.stat().st_size}

    @seed(SEED)
    @settings(max_examples=-(-REQUESTS // BATCH), deadline=None, print_blob=True, phases=PHASES,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(batch=st.lists(requests(markers, cookie, token), min_size=BATCH, max_size=BATCH))
    def send_batch(batch: list) -> None:  # type: ignore[type-arg]
        answers = sender.send(batch)
        statuses.update(a.status for a in answers)
        problems = [f"{p}: {a.request.data[:300]!r}" for a in answers
                    for p in answer_problems(a, server.root)]
        # What the server wrote while answering this batch, searched for its markers.
        out = _read_from(server.stdout_path, seen["stdout"])
        err = _read_from(server.stderr_path, seen["stderr"])
        seen["stdout"] += len(out)
        seen["stderr"] += len(err)
        problems += output_problems(out, err, [r.marker for r in batch])
        assert not problems, "\n".join(problems[:20])

    try:
        send_batch()
    finally:
        sender.close()
    print("answers by status:", sorted(statuses.items(), key=str))
    assert sum(statuses.values()) >= REQUESTS
    # The requests reached the applications, not only aiohttp's parser: pages, the
    # forms' refusals (CSRF, malformed, too large) and the staff app's 401.
    for status in (200, 400, 401, 403, 404, 405):
        assert statuses[status] > 0, (status, statuses)

    # Still serving: a normal report, which the reference age binary decrypts.
    before = set(server.store_dir.iterdir())
    asyncio.run(_normal_report(server))
    stored = set(server.store_dir.iterdir()) - before
    assert len(stored) == 2
    plain = {p.name.removesuffix(".age"): subprocess.run(
        [age_binary, "-d", "-i", str(server.identity("triage")), str(p)],
        capture_output=True, check=True).stdout for p in stored}
    report = report_document(plain)
    assert report["answers"]["description"] == "after the storm"
    (attachment,) = report["attachments"]
    assert plain[attachment["file_id"]] == b"evidence \x00\xff" * 1000

    # Stopped, so that everything it would write on the way out is in the files:
    # no marker of any request, of any batch, anywhere in its output.
    server.stop()
    problems = output_problems(server.stdout_path.read_bytes(),
                               server.stderr_path.read_bytes(), markers.issued)
    assert not problems, "\n".join(problems[:20])


def test_the_checks_catch_a_leak_a_500_and_a_traceback(tmp_path: Path) -> None:
    """The controls: each check above fails on what it is there to catch."""
    req = RawRequest(staff=False, data=b"GET / HTTP/1.1\r\n\r\n", marker=b"Mkab120000001")
    ok = Answer(req, 404, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert answer_problems(ok, tmp_path) == []
    for raw in (b"HTTP/1.1 500 Internal Server Error\r\n\r\n",
                b"HTTP/1.1 400 Bad Request\r\n\r\nTraceback (most recent call last)",
                b"HTTP/1.1 400 Bad Request\r\nServer: Python/3.11 aiohttp/3.14\r\n\r\n",
                b"HTTP/1.1 404 Not Found\r\n\r\n" + str(tmp_path).encode()):
        status = int(raw.split(b" ")[1])
        assert answer_problems(Answer(req, status, raw), tmp_path), raw
    assert answer_problems(Answer(req, None, b"garbage"), tmp_path)
    start = b"Amana intake server listening on http://127.0.0.1:8080/\n"
    assert output_problems(start, b"WARNING intake_server: x at y.py:1\n", [req.marker]) == []
    for out, err in ((start, b"INFO intake_server: got Mkab120000001\n"),
                     (start, b"ERROR intake_server: x " + b"Mkab120000001".hex().encode()),
                     (start, b"Traceback (most recent call last):\n"),
                     (start, b"ERROR intake_server: internal error: KeyError at a.py:1\n"),
                     (start + b"GET /Mkab120000001\n", b"")):
        assert output_problems(out, err, [req.marker]), (out, err)
