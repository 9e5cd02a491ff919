"""Fixtures for integration tests: the real `intake-server demo` process.

The server runs as a separate process exactly as `make run` starts it, with
TMPDIR pointed at a directory of the test's own (so the canary test can search
it) and its stdout/stderr captured to files (so logs can be searched too).
Network: 127.0.0.1 only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ServerProcess, free_port  # noqa: E402


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, free_port())
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()

