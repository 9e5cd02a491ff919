"""Helpers for the deploy/ checks: paths, and running the real tor offline.

Tor is only ever started with DisableNetwork 1, SocksPort 0 and a temporary
DataDirectory: it reads its configuration, creates the onion services' keys and
hostname files, and makes no connection at all. It is always terminated, also when a
test fails.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TORRC = DEPLOY / "tor" / "torrc"
UNIT = DEPLOY / "systemd" / "intake-server.service"
TOR_DEFAULTS = Path("/usr/share/tor/tor-service-defaults-torrc")

# Warnings that say something about how the test runs tor, not about the torrc: CI and
# this machine run as root, and the offline run logs at "info" to see what tor loaded.
BENIGN_WARNINGS = (
    "You are running Tor as root",
    "Your log may contain sensitive information",
)

HS_DIR_RE = re.compile(r"^HiddenServiceDir\s+/var/lib/tor/(\S+?)/?\s*$", re.MULTILINE)


# Absolute paths deploy/README.md writes to or reads from, which tests/deploy/test_guide.py
# moves under a temporary root.
ROOTED = ("/opt", "/var/lib", "/var/log", "/etc/tor", "/etc/systemd", "/usr/local/bin",
          "/root", "/home", "/tmp", "/media")
_ROOTED_RE = re.compile(
    r"(?<![\w.~/-])(" + "|".join(re.escape(p) for p in ROOTED) + r")(?=/|\s|$|['\"])"
)


def rooted(text: str, root: Path) -> str:
    """``text`` with every absolute path under one of :data:`ROOTED` moved into ``root``."""
    return _ROOTED_RE.sub(lambda m: f"{root}{m.group(1)}", text)


def warnings_in(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if "[warn]" in line and not any(b in line for b in BENIGN_WARNINGS)
    ]


def service_names(torrc: str) -> list[str]:
    """The HiddenServiceDir names under /var/lib/tor/ in a torrc, in order."""
    return HS_DIR_RE.findall(torrc)


def offline_torrc(torrc: str, root: Path) -> str:
    """The torrc with every /var/lib/tor/NAME/ service moved under ``root``, plus the
    options that keep this tor offline and self-contained.

    The services are moved because the real /var/lib/tor is owned by debian-tor (mode
    2700) and may not exist, and because a test must never create onion keys there.
    """
    rewritten = HS_DIR_RE.sub(lambda m: f"HiddenServiceDir {root / m.group(1)}/", torrc)
    assert rewritten != torrc, "the torrc has no HiddenServiceDir under /var/lib/tor"
    return rewritten + (
        "\n## --- added by tests/deploy: offline, temporary ---\n"
        f"DataDirectory {root / 'data'}\n"
        "DisableNetwork 1\n"
        "SocksPort 0\n"
        f"Log info file {root / 'tor.log'}\n"
    )


def run_tor_offline(
    tor: str,
    torrc_path: Path,
    root: Path,
    wait_for: list[Path],
    timeout: float = 30.0,
    then: Callable[[subprocess.Popen[str]], None] | None = None,
) -> str:
    """Start tor on ``torrc_path``, wait until every ``wait_for`` file exists (bounded),
    call ``then(process)`` if given, stop tor, and return its log. Fails the test if
    tor exits early or times out."""
    (root / "data").mkdir(mode=0o700, exist_ok=True)
    empty_defaults = root / "empty-defaults-torrc"
    empty_defaults.write_text("")
    # Our own empty defaults file: Debian's would add User debian-tor, a PidFile and a
    # ControlSocket under /run/tor, none of which this check needs.
    proc = subprocess.Popen(
        [tor, "--defaults-torrc", str(empty_defaults), "-f", str(torrc_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not all(p.exists() and p.stat().st_size > 0 for p in wait_for):
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"tor exited with {proc.returncode} before writing {wait_for}:\n{out}")
            if time.monotonic() > deadline:
                pytest.fail(f"tor wrote no {wait_for} within {timeout} s")
            time.sleep(0.1)
        if then is not None:
            then(proc)
        # The files are written while tor loads the services; give it a moment to log
        # whatever it has to say about them (client keys, permissions) before stopping.
        time.sleep(1.0)
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
    log_file = root / "tor.log"
    return (out or "") + (log_file.read_text() if log_file.exists() else "")
