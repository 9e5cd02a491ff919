"""Fixtures for the iocs tests: the shared indicator files, loaded once and indexed."""

from __future__ import annotations

import pytest

# The folder is not called "iocs": pytest's importlib mode names modules from tests/
# down, and tests/journalist_client/iocs/ would shadow the real journalist_client.iocs.
from journalist_client.iocs import IndicatorFile, IndicatorIndex
from support.iocs import SHARED_FILES, shared_bundle


@pytest.fixture(scope="session")
def shared() -> dict[str, IndicatorFile]:
    return {name: shared_bundle(name) for name in SHARED_FILES}


@pytest.fixture(scope="session")
def index(shared: dict[str, IndicatorFile]) -> IndicatorIndex:
    return IndicatorIndex.build(i for f in shared.values() for i in f.indicators)
