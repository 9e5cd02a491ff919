"""Fixtures for the staff app tests: a site (desks, keys, storage) and a client of its staff app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from intake_server.staff import create_staff_app
from intake_server.staff.app import STAFF_STORE
from support.staff import DESKS, Site, make_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
async def staff(site: Site, aiohttp_client: Any) -> Any:
    app = create_staff_app(site.config, signing_key=site.server_key, storage=site.storage)
    client = await aiohttp_client(app)
    for desk in DESKS:
        app[STAFF_STORE].add_transfer_key(desk, site.transfer[desk].verify_key)
    return client
