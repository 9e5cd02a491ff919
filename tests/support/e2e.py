"""The whole path with real processes: an `intake-server serve` install whose desks made
their own keys, and the project's commands run as a user runs them.

Used by tests/integration's end-to-end tests (transfer, post-quantum desks, indicators).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from intake_server.install import init_install
from keys.keyring import Desk, Keyring
from support.server_process import free_port

BIN = Path(sys.executable).parent
# The desks' passphrase (a test's own desks, written to ROOT/pw for --passphrase-file).
PASSPHRASE = "correct horse battery staple for the demo desk"  # noqa: S105 - test desk


def run(*argv: str, cwd: Path) -> str:
    """Run one of the project's commands from the venv; its stdout (it must succeed)."""
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                            cwd=cwd, timeout=120, check=False,
                            env=dict(os.environ, AMANA_VAULT=""))
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


@contextlib.contextmanager
def serving(root: Path, desks: Sequence[Desk]) -> Iterator[dict[str, Any]]:
    """An install in ROOT/server with ``desks`` in its keyring, served by the real
    `intake-server serve` on two free loopback ports until the block ends.

    Yields ``root``, ``config`` (the config file), ``port`` and ``staff`` (the ports).
    """
    port, staff_port = free_port(), free_port()
    config = init_install(root / "server", port=port, staff_port=staff_port,
                          default_desk=desks[0].id)
    Keyring(list(desks)).save(config.parent / "keyring.json")
    (root / "pw").write_text(PASSPHRASE + "\n")
    log = root / "server.out"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "intake-server"), "serve", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=root)
        try:
            deadline = time.monotonic() + 30
            while b"staff app listening" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
            yield {"root": root, "config": config, "port": port, "staff": staff_port}
        finally:
            proc.terminate()
            proc.wait(timeout=10)
