"""The staff app's answers that come before or instead of its work (issue 13).

A compressed body is refused before authentication and before a byte is read (415);
a full disk is a 503, not a 500; a transfer machine that goes away mid-body is not
logged as an error; and an unexpected error is logged by type and place, never with
its text (which may quote the request).
"""

from __future__ import annotations

import errno
import gzip
import sqlite3
from typing import Any

import pytest
from aiohttp import web

from intake_server.staff import create_staff_app
from support.staff import Site


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity, gzip", ""])
@pytest.mark.parametrize("path", ["acks", "outbox"])
async def test_a_compressed_body_is_415_before_anything_else(staff, coding, path) -> None:
    resp = await staff.post(f"/v1/desks/triage/{path}", data=gzip.compress(b"x" * 10_000),
                            headers={"Content-Encoding": coding})
    assert resp.status == 415
    assert await resp.json() == {"error": "compressed bodies are not accepted"}
    assert resp.headers["Connection"] == "close"


async def test_identity_is_not_refused(staff) -> None:
    resp = await staff.post("/v1/desks/triage/acks", data=b"x",
                            headers={"Content-Encoding": "Identity"})
    assert resp.status == 401  # on to authentication, which it fails


async def test_errors_are_answered_without_their_text(
        site: Site, aiohttp_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = create_staff_app(site.config, signing_key=site.server_key, storage=site.storage)
    marker = "Mq31secret"
    full = sqlite3.OperationalError(f"database or disk is full {marker}")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    errors: dict[str, BaseException] = {
        "enospc": OSError(errno.ENOSPC, marker), "edquot": OSError(errno.EDQUOT, marker),
        "sqlite-full": full, "gone": ConnectionResetError(marker),
        "bug": ValueError(marker)}

    def raising(exc: BaseException) -> Any:
        async def handler(request: web.Request) -> web.Response:
            raise exc
        return handler

    for name, exc in errors.items():
        app.router.add_post(f"/test/{name}", raising(exc))
    client = await aiohttp_client(app)
    for name in ("enospc", "edquot", "sqlite-full"):
        resp = await client.post(f"/test/{name}")
        assert resp.status == 503, name
        assert await resp.json() == {"error": "the server's disk is full"}
    resp = await client.post("/test/gone")
    assert resp.status == 400
    # Neither a full disk nor a lost client is a bug. (The test server's own access
    # log may record here, depending on what ran before; the server has none.)
    assert [r for r in caplog.records if r.name.startswith("intake_server")] == []
    resp = await client.post("/test/bug")
    assert resp.status == 500
    assert "staff request failed: ValueError at test_staff_refusals.py:" in caplog.text
    assert marker not in caplog.text
