"""Shared fixtures: the real system tools the suite drives.

A test that needs `age`, `tor` or Chromium asks for it through `system_tool`.
On a developer machine without the tool the test is skipped and says why; in CI
(REQUIRE_SYSTEM_TOOLS=1, set by .ci/run after installing them) it fails instead,
so a missing install step can never turn into a quietly green run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest

INSTALL_HINT = {
    "age": "apt-get install age",
    "tor": "apt-get install tor",
    "chromium": "apt-get install chromium",
    "systemd-analyze": "apt-get install systemd",
    "strace": "apt-get install strace",
    "age-keygen": "apt-get install age",
}


def find_system_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path:
        return path
    message = f"`{name}` is not installed ({INSTALL_HINT.get(name, 'install it')})"
    if os.environ.get("REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(f"{message}, and REQUIRE_SYSTEM_TOOLS=1 says it must be")
    pytest.skip(message)


@pytest.fixture(scope="session")
def system_tool() -> Callable[[str], str]:
    """Returns the path of a system tool, skipping (or failing in CI) when absent."""
    return find_system_tool


@pytest.fixture(scope="session")
def age_binary() -> str:
    return find_system_tool("age")
