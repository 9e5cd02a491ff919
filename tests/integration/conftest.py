"""Fixtures for integration tests: the real `intake-server demo` process.

The server runs as a separate process exactly as `make run` starts it, with
TMPDIR pointed at a directory of the test's own (so the canary test can search
it) and its stdout/stderr captured to files (so logs can be searched too).
Network: 127.0.0.1 only.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.server_process import ServerProcess, free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, free_port())
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mounts a small tmpfs of the given size ("8m") and returns where; unmounted at
    the end. Mounting needs root (CI runs as root): elsewhere the test is skipped and
    says why. As root, a mount that fails is a failure under REQUIRE_SYSTEM_TOOLS=1
    (CI must run these), and a skip with the reason otherwise."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; the injected errors of "
                        "tests/intake_server/test_out_of_space.py cover each path")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                               "tmpfs", str(point)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            message = f"mounting a tmpfs failed as root ({done.stderr.strip()})"
            if os.environ.get("REQUIRE_SYSTEM_TOOLS") == "1":
                pytest.fail(f"{message}, and REQUIRE_SYSTEM_TOOLS=1 says it must work")
            pytest.skip(message)
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "--lazy", str(point)], check=False)


# Chromium gets nothing but the test server: background services off, and any other
# host fails to resolve.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-default-apps", "--disable-extensions",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture(scope="module")
def browser(system_tool):  # type: ignore[no-untyped-def]
    """Debian's Chromium under Playwright (JavaScript is switched off per context)."""
    chromium = system_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def new_page(browser):  # type: ignore[no-untyped-def]
    """Open pages with JavaScript off, each in a context of its own with the given
    locale; every request a page makes is recorded in ``page.requests``. The
    contexts are closed at the end of the test."""
    contexts = []

    def open_page(locale: str):  # type: ignore[no-untyped-def]
        context = browser.new_context(java_script_enabled=False, locale=locale,
                                      viewport={"width": 1000, "height": 1400})
        contexts.append(context)
        page = context.new_page()
        page.requests = []
        page.on("request", lambda r: page.requests.append(r.url))
        return page

    yield open_page
    for context in contexts:
        context.close()
