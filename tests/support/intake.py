"""Helpers for the intake_server tests: a fresh install, forms, CSRF, leftovers."""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from intake_server.config import Config
from intake_server.protocol_errors import SECURITY_HEADERS
from keys.age import X25519Identity
from keys.keyring import Desk, Keyring
from keys.signing import SigningKey

LANGS = ("en", "ar", "fr")
# The two desks every test install has; the staff tests (support.staff) use the same.
DESKS = ("triage", "forensics")


def cli_commands(parser: argparse.ArgumentParser,
                 prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every leaf command of an argparse parser ("desk add-transfer-key", ...), with its
    own parser, read from the parser itself so that a new command cannot be missed."""
    for action in parser._actions:  # noqa: SLF001 - argparse exposes no other way
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                yield from cli_commands(sub, (*prefix, name))
            return
    yield " ".join(prefix), parser


@dataclass
class Install:
    root: Path
    config: Config
    identities: dict[str, X25519Identity]
    signing: dict[str, SigningKey]  # the desks' signing keys (air-gapped side)
    keyring: Keyring

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def stored_names(self) -> list[str]:
        return sorted(p.name for p in self.config.store_dir.iterdir())

    def incoming_names(self) -> list[str]:
        return sorted(p.name for p in self.config.incoming_dir.iterdir())


def make_install(root: Path, **overrides: Any) -> Install:
    """A fresh server install under ``root``: the two desks' keys, the keyring and a
    Config (not yet opened). ``overrides`` are Config fields."""
    identities = {d: X25519Identity.generate() for d in DESKS}
    signing = {d: SigningKey.generate() for d in DESKS}
    desks = [
        Desk.create(d, {"en": f"{d} desk", "ar": f"مكتب {d}", "fr": f"bureau {d}"},
                    str(identities[d].recipient()), str(signing[d].verify_key))
        for d in DESKS
    ]
    keyring = Keyring(desks)
    keyring_path = root / "keyring.json"
    keyring_path.write_bytes(keyring.to_json())
    # No codename reserve by default: each test app would otherwise derive two
    # codenames in the background at start-up (test_sources.py covers the reserve).
    overrides.setdefault("codename_reserve", 0)
    config = Config(data_dir=root / "data", keyring=keyring_path, default_desk="triage",
                    **overrides)
    return Install(root, config, identities, signing, keyring)


CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


async def eventually(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` is true (work done in a thread, a worker process or
    a loop callback), at most ``timeout`` seconds. The caller asserts afterwards."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def get_csrf(client: Any, lang: str = "en") -> str:
    resp = await client.get(f"/{lang}/submit")
    assert resp.status == 200
    match = CSRF_RE.search(await resp.text())
    assert match
    return match.group(1)


def form(fields: Iterable[tuple[str, Any]],
         files: Iterable[tuple[str, bytes]] = ()) -> aiohttp.FormData:
    # quote_fields=False: send names as browsers do (raw UTF-8), not percent-encoded.
    data = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    for name, value in fields:
        data.add_field(name, value)
    for filename, content in files:
        data.add_field("files", io.BytesIO(content), filename=filename,
                       content_type="application/octet-stream")
    return data


def base_fields(csrf: str, **extra: str) -> list[tuple[str, str]]:
    fields = [("csrf", csrf), ("category", "spyware"), ("desks", "triage")]
    fields += list(extra.items())
    return fields


def assert_nothing_stored(inst: Install) -> None:
    """A refused submission leaves no file and no row behind."""
    assert inst.incoming_names() == []
    assert inst.stored_names() == []
    import sqlite3

    with sqlite3.connect(inst.config.db_path) as conn:
        for table in ("submissions", "files", "submission_desks"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0  # noqa: S608


EXPECTED_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                "frame-ancestors 'none'; base-uri 'none'")


def assert_security_headers(resp) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, name
    assert resp.headers["Content-Security-Policy"] == EXPECTED_CSP
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Server" not in resp.headers
    assert "Date" not in resp.headers  # the clock, to the second: see protocol_errors.py
