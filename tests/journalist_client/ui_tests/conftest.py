"""The real `journalist-client ui` process over a vault with four items in it.

The vault is built by the CLI fixtures of tests/journalist_client/conftest.py (a
report in Arabic with an attachment, one in English, one full of hostile text, a
follow-up); the UI runs as its own process, exactly as a triager starts it, and
the tests talk to it over 127.0.0.1 with a plain HTTP client or Debian's Chromium.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The parent folder's builders: "journalist_client" on the path is the package itself.
from ..conftest import Run, Server, report_doc  # noqa: TID252

# Chromium gets nothing but the UI: background services off, any other host unresolvable.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-default-apps", "--disable-extensions",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@dataclass
class UI:
    proc: subprocess.Popen[bytes]
    url: str  # the first line printed: http://127.0.0.1:PORT/login?token=…
    vault: Path
    passfile: Path

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.url).port or 0)

    @property
    def token(self) -> str:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)["token"][0]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                body: str | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        for k, v in hdrs.items():
            conn.putheader(k, v)
        data = body.encode("utf-8") if body is not None else None
        if data is not None:
            conn.putheader("Content-Type", "application/x-www-form-urlencoded")
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        resp.body = resp.read()  # type: ignore[attr-defined]
        conn.close()
        return resp

    def login(self) -> str:
        """Use the token; return the session cookie header value."""
        resp = self.request("GET", "/login?token=" + self.token)
        assert resp.status == 303, resp.body  # type: ignore[attr-defined]
        cookie = resp.getheader("Set-Cookie") or ""
        return cookie.split(";", 1)[0]

    def csrf(self, cookie: str) -> str:
        page = self.request("GET", "/", headers={"Cookie": cookie}).body  # type: ignore[attr-defined]
        m = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert m is not None
        return m.group(1).decode()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def start_ui(vault: Path, passfile: Path, *extra: str) -> UI:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "journalist_client.cli", "--vault", str(vault),
         "--passphrase-file", str(passfile), "ui", "--no-browser", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode().strip()
    if not first.startswith("http://127.0.0.1:"):
        proc.kill()
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise AssertionError(f"the UI did not start: {first!r} {err}")
    return UI(proc, first, vault, passfile)


@pytest.fixture
def declined(imported: dict[str, str], run: Run, server: Server) -> str:
    """The id of a fifth report, whose source declined sharing within the coalition."""
    doc = report_doc(description="please keep this to your desk only", country="TN")
    doc["answers"]["consent"]["share_within_coalition"] = False
    code, _, err = run("import", str(server.bundle([server.item(doc)])))
    assert code == 0, err
    return str(doc["submission_id"])


@pytest.fixture
def ui(declined: str, vault_dir: Path, passfile: Path) -> Iterator[UI]:
    u = start_ui(vault_dir, passfile)
    try:
        yield u
    finally:
        u.stop()


@pytest.fixture(scope="module")
def browser(system_tool: Callable[[str], str]) -> Iterator[Any]:
    """Debian's Chromium under Playwright (JavaScript on or off per context)."""
    chromium = system_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@dataclass
class Watched:
    """A page and everything it did: requests, dialogs, console messages, page errors."""

    page: Any
    requests: list[str]
    dialogs: list[str]
    console: list[str]
    errors: list[str]


@pytest.fixture
def open_ui(browser: Any, ui: UI) -> Iterator[Callable[..., Watched]]:
    """Log in to the UI in a fresh context (JavaScript on or off, a locale)."""
    contexts = []

    def _open(*, js: bool, locale: str = "en-US") -> Watched:
        context = browser.new_context(java_script_enabled=js, locale=locale,
                                      viewport={"width": 1200, "height": 1400})
        contexts.append(context)
        page = context.new_page()
        w = Watched(page, [], [], [], [])
        page.on("request", lambda r: w.requests.append(r.url))
        page.on("dialog", lambda d: (w.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: w.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: w.errors.append(str(e)))
        page.goto(ui.url)
        return w

    yield _open
    for c in contexts:
        c.close()
