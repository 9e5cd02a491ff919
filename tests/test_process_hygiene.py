"""Process hygiene (issue 13, item 10): no entry point can be core-dumped.

``RLIMIT_CORE`` alone is ignored when core_pattern pipes dumps to a handler
(systemd-coredump, apport), so each program must also clear its dumpable flag
(keys.process). Each entry point runs here in a real process of its own, as its console
script runs it, and the kernel is asked (prctl PR_GET_DUMPABLE, by the probe's own
call) whether that process is dumpable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.server_process import free_port

PROBE = Path(__file__).parent / "support" / "dumpable_probe.py"
ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="PR_SET_DUMPABLE is Linux's")


def _probe(target: str, *args: str, wait_port: int | None = None, cwd: Path) -> str:
    argv = [sys.executable, str(PROBE), target]
    if wait_port is not None:
        argv += ["--wait-port", str(wait_port)]
    done = subprocess.run([*argv, "--", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("dumpable=")]
    assert lines, done.stderr[-2000:]
    return lines[-1]


def test_the_probe_sees_a_dumpable_process(tmp_path: Path) -> None:
    # The control: a Python process that does not harden itself is dumpable, so the
    # probe's "dumpable=0" below is the entry points' doing.
    assert _probe("builtins:print", cwd=tmp_path) == "dumpable=1"


def test_journalist_client_is_not_dumpable(tmp_path: Path) -> None:
    assert _probe("journalist_client.cli:main", "list", cwd=tmp_path) == "dumpable=0"


def test_journalist_transfer_is_not_dumpable(tmp_path: Path) -> None:
    assert _probe("journalist_client.online.cli:main", "fetch", "--dir", str(tmp_path / "t"),
                  "--server", "http://127.0.0.1:9", "--out", str(tmp_path / "o"),
                  cwd=tmp_path) == "dumpable=0"


def test_intake_server_demo_is_not_dumpable_while_serving(tmp_path: Path) -> None:
    port = free_port()
    assert _probe("intake_server.__main__:main", "demo", "--dir", str(tmp_path / "demo"),
                  "--port", str(port), "--staff-port", str(free_port()),
                  wait_port=port, cwd=tmp_path) == "dumpable=0"


def test_intake_keys_is_not_dumpable(tmp_path: Path) -> None:
    # intake-keys generates and holds desk keys: the same rule.
    assert _probe("keys.cli:main", "--help", cwd=tmp_path) == "dumpable=0"


def test_harden_process_reports_what_it_did(tmp_path: Path) -> None:
    # In a process of its own (the test runner's children must stay inspectable).
    code = ("from keys import process; d = process.is_dumpable(); "
            "print(d, process.harden_process(), process.is_dumpable())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.split() == ["True", "True", "False"]
