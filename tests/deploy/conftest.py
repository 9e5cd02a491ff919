"""Fixtures for the deploy/ checks (helpers in deploy_helpers.py, beside this file)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# The helpers module sits beside this file; make it importable by name for the tests.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tor(system_tool: Callable[[str], str]) -> str:
    return system_tool("tor")


@pytest.fixture
def tor_root(tmp_path: Path) -> Path:
    # tor refuses a HiddenServiceDir or DataDirectory that others can read into.
    root = tmp_path / "tor"
    root.mkdir(mode=0o700)
    os.chmod(root, 0o700)
    return root
