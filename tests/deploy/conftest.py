"""Fixtures for the deploy/ checks (helpers in tests/support/deploy.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest


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
