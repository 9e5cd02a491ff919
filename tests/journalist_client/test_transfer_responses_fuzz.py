"""`journalist-transfer fetch` against a hostile staff server (issue 18, "Malformed
input"): generated answers (status lines, cursors, lengths that lie, broken chunking,
ranges never asked for, redirects, compressed bodies, bundles damaged or signed with
hostile index.json and keyring.json) end in a verified bundle, nothing, or a
TransferError, the one error the command reports (journalist_client/online/cli.py);
never another exception, and never more bytes on disk than the limit.

The server is a raw asyncio socket that writes the generated answer and hangs up, so
that answers no HTTP library would build can be sent.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import types
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journalist_client.online import fetch as fetch_module
from journalist_client.online.credential import TransferError, init_transfer, load_settings
from keys.bundle import open_bundle, write_bundle
from keys.signing import SigningKey
from support.staff import make_site

EXAMPLES = min(int(os.environ.get("AMANA_FUZZ_EXAMPLES", "100")), 400)
MAX_BYTES = 64 * 1024


def _export(key: SigningKey, files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    write_bundle(out, "desk-export", "server", [(n, io.BytesIO(d)) for n, d in files.items()],
                 key)
    return out.getvalue()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=10)


@st.composite
def answers(draw: st.DrawFn, key: SigningKey) -> bytes:
    index = {"format": "amana-desk-export", "version": draw(st.sampled_from([1, 2, 3])),
             "desk": "triage", "cursor": "7", "items": [], "after": "",
             "unacknowledged": 0, "before_cursor": {"count": 0, "ids": []},
             "deleted_unacknowledged": []}
    for _ in range(draw(st.integers(0, 2))):
        index[draw(st.sampled_from([*index, "x"]))] = draw(JSON)
    files = {"index.json": json.dumps(index).encode()}
    if draw(st.booleans()):
        files["keyring.json"] = draw(st.sampled_from([b"{}", b"\xff", json.dumps(
            draw(JSON)).encode()]))
    body = draw(st.sampled_from(["export", "damaged", "random", "empty", "large"]))
    raw = _export(key, files)
    if body == "damaged":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ 0x55]) + raw[at + 1:]
    elif body == "random":
        raw = draw(st.binary(max_size=300))
    elif body == "empty":
        raw = b""
    elif body == "large":
        raw = b"\x00" * (MAX_BYTES * 2)
    status = draw(st.sampled_from(
        [b"200 OK", b"200 OK", b"206 Partial", b"416 No", b"401 No", b"403 No", b"500 Oops",
         b"302 Found", b"100 Continue", b"999 What", b"200", b"20 OK", b"2000 OK"]))
    headers = [b"Connection: close"]
    cursor = draw(st.sampled_from([b"7", b"7", b"", b"a" * 200, b"../../x", b"7 8",
                                   b"\xff", None]))
    if cursor is not None:
        headers.append(b"Amana-Cursor: " + cursor)
    framing = draw(st.sampled_from(["length", "length", "short", "long", "none", "chunked",
                                    "bad-chunked", "gzip"]))
    if framing == "gzip":
        raw = gzip.compress(raw)
        headers.append(b"Content-Encoding: gzip")
        framing = "length"
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(raw))
    elif framing == "short":
        headers.append(b"Content-Length: %d" % max(len(raw) - 7, 0))
    elif framing == "long":
        headers.append(b"Content-Length: %d" % (len(raw) + 1000))
    elif framing in ("chunked", "bad-chunked"):
        headers.append(b"Transfer-Encoding: chunked")
        raw = b"%x\r\n" % len(raw) + raw + b"\r\n" + (
            b"0\r\n\r\n" if framing == "chunked" else b"zz\r\n")
    for extra in draw(st.lists(st.sampled_from([
            b"Location: http://127.0.0.1:9/elsewhere", b"Content-Range: bytes 5-9/10",
            b"Content-Range: bytes */0", b"Content-Type: text/html", b"Set-Cookie: a=b",
            b"X: \x00\x1b[2J", b"Content-Length: 3"]), max_size=2)):
        headers.append(extra)
    return b"HTTP/1.1 " + status + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + raw


async def _fetch_from(answer: bytes, transfer: Path, out: Path) -> Path | None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await fetch_module.fetch(load_settings(transfer), server=f"http://127.0.0.1:{port}",
                                        out_dir=out, show_progress=False, max_bytes=MAX_BYTES)
    finally:
        server.close()
        await server.wait_closed()


async def _no_wait(_seconds: float) -> None:
    return None


def test_fetch_from_a_hostile_server_only_raises_transfer_error(tmp_path: Path,
                                                                 monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "site").mkdir()
    site = make_site(tmp_path / "site")
    transfer = tmp_path / "transfer"
    init_transfer(transfer, desk="triage", server_key=str(site.server_key.verify_key),
                  keyring_path=site.config.keyring)
    # The pause between attempts (2, 4, 8 s) is for real networks, not for this test;
    # everything else about retrying and resuming runs as written.
    monkeypatch.setattr(fetch_module, "asyncio", types.SimpleNamespace(sleep=_no_wait))
    outcomes: dict[str, int] = {}
    runs = {"n": 0}

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(answer=answers(site.server_key))
    def one(answer: bytes) -> None:
        runs["n"] += 1
        out = tmp_path / f"usb{runs['n']}"
        try:
            bundle = asyncio.run(_fetch_from(answer, transfer, out))
        except TransferError:
            outcomes["refused"] = outcomes.get("refused", 0) + 1
            bundle = None
        else:
            outcomes["kept" if bundle else "nothing"] = outcomes.get(
                "kept" if bundle else "nothing", 0) + 1
        if bundle is not None:
            # What fetch keeps verifies against the server's key.
            with open_bundle(bundle, {"server": site.server_key.verify_key},
                             kind="desk-export"):
                pass
        kept = sum(p.stat().st_size for p in out.iterdir()) if out.exists() else 0
        assert kept <= MAX_BYTES
        (transfer / "cursor.json").unlink(missing_ok=True)  # each answer from the start

    one()
    print("outcomes", outcomes)
    # Both ends were reached: refusals, and bundles that verified and were kept.
    assert outcomes.get("refused", 0) > 0, outcomes
    assert outcomes.get("kept", 0) + outcomes.get("nothing", 0) > 0, outcomes
