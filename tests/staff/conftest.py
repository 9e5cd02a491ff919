"""The one fixture test_transfer.py needs, until it moves to tests/integration/ (issue 12).

The staff tests and their helpers live in tests/intake_server/staff/; this file only
makes that helper module importable for the test left here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "intake_server" / "staff"))
from staff_helpers import Site, make_site  # noqa: E402


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)
