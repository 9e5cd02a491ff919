"""Fixtures: a fresh install (two desks, keyring, config) and an aiohttp test client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from intake_server.app import create_app
from support.intake import Install, make_install


@pytest.fixture
def install(tmp_path: Path) -> Install:
    return make_install(tmp_path)


@pytest.fixture
def make_client(aiohttp_client: Any) -> Callable[..., Any]:
    async def _make(inst: Install) -> Any:
        return await aiohttp_client(create_app(inst.config))
    return _make


@pytest.fixture
async def client(install: Install, make_client: Callable[..., Any]) -> Any:
    return await make_client(install)


