"""Shared by the staff tests: a site (desks, keys, storage), submissions through the
real storage path, signed requests, and bundles as the air-gapped client makes them;
and, for the real demo server process (support.server_process), its desks' keys,
submissions and transfer keys added as an operator command would, and the transfer
machine's side of its staff app (DemoStaff)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from intake_server.config import Config
from intake_server.install import CONFIG_NAME
from intake_server.staff.store import StaffStore
from intake_server.storage import Storage, new_id
from keys.age import X25519Identity, decrypt, parse_recipient
from keys.bundle import open_bundle, write_bundle
from keys.identity import DeskKeys, load_desk
from keys.keyring import Keyring
from keys.request_auth import sign_request
from keys.signing import SigningKey, VerifyKey
from support.intake import DESKS, make_install


@dataclass
class Site:
    config: Config
    identities: dict[str, X25519Identity]
    signing: dict[str, SigningKey]  # desk signing keys (air-gapped side)
    transfer: dict[str, SigningKey]  # transfer credentials (online side)
    server_key: SigningKey
    storage: Storage


def make_site(tmp_path: Path) -> Site:
    """The staff side of a fresh install (support.intake.make_install): its storage
    opened, a transfer credential per desk and the server's signing key."""
    install = make_install(tmp_path)
    storage = Storage(install.config)
    storage.open()
    return Site(
        install.config,
        install.identities,
        install.signing,
        {d: SigningKey.generate() for d in DESKS},
        SigningKey.generate(),
        storage,
    )


async def submit(
    site: Site,
    desks: tuple[str, ...],
    report: bytes,
    attachments: tuple[bytes, ...] = (),
    day: dt.date | None = None,
) -> str:
    recipients = [site.identities[d].recipient() for d in desks]
    txn = site.storage.begin(recipients, day=day)
    for content in attachments:
        f = txn.new_file("attachment")
        f.write(content)
    r = txn.new_file("report")
    r.write(report)
    sid = new_id()
    await txn.commit(
        submission_id=sid,
        desks=list(desks),
        source_id="0" * 64,
        reply_recipient=str(X25519Identity.generate().recipient()),
    )
    return sid


def signed(
    site: Site, desk: str, method: str, path: str, body: bytes = b"", key: SigningKey | None = None
) -> dict[str, str]:
    return sign_request(
        key or site.transfer[desk],
        method=method,
        path=path,
        desk=desk,
        body_sha256=hashlib.sha256(body).hexdigest(),
    )


async def fetch(staff: Any, site: Site, desk: str, after: str = "0") -> tuple[bytes, str]:
    path = f"/v1/desks/{desk}/bundle?after={after}"
    resp = await staff.get(path, headers=signed(site, desk, "GET", path))
    assert resp.status == 200, await resp.text()
    return await resp.read(), resp.headers["Amana-Cursor"]


def read_export(raw: bytes, tmp: Path, site: Site, desk: str) -> dict[str, Any]:
    path = tmp / f"{desk}-{hashlib.sha256(raw).hexdigest()[:8]}.bundle"
    path.write_bytes(raw)
    with open_bundle(path, {"server": site.server_key.verify_key}, kind="desk-export") as b:
        index = json.loads(b.read("index.json"))
        docs = {
            item["id"]: [decrypt(b.read(n), [site.identities[desk]]) for n in item["files"]]
            for item in index["items"]
        }
    return {"index": index, "docs": docs}


def bundle_bytes(kind: str, creator: str, files: dict[str, bytes], key: SigningKey) -> bytes:
    out = io.BytesIO()
    write_bundle(out, kind, creator, [(n, io.BytesIO(c)) for n, c in files.items()], key)
    return out.getvalue()


def ack_bundle(site: Site, desk: str, ids: list[str], key: SigningKey | None = None) -> bytes:
    doc = {"format": "amana-ack", "version": 1, "desk": desk, "ids": ids}
    return bundle_bytes(
        "ack", desk, {"ack.json": json.dumps(doc).encode()}, key or site.signing[desk]
    )


def outbox_bundle(site: Site, items: list[dict[str, Any]], files: dict[str, bytes],
                  key: SigningKey | None = None) -> bytes:
    """An outbox bundle from the triage desk: ``items`` and the ``files`` they name."""
    doc = {"format": "amana-outbox", "version": 1, "desk": "triage", "items": items}
    return bundle_bytes("outbox", "triage", {"outbox.json": json.dumps(doc).encode(), **files},
                        key or site.signing["triage"])


async def post(
    staff: Any, site: Site, desk: str, what: str, body: bytes, key: SigningKey | None = None
) -> Any:
    path = f"/v1/desks/{desk}/{what}"
    return await staff.post(path, data=body, headers=signed(site, desk, "POST", path, body, key))


# --- the real demo server's install (support.server_process), running or stopped


def demo_desk_keys(demo_dir: Path, desk: str) -> DeskKeys:
    """A demo desk's keys (identity and signing key), as its air-gapped machine holds them."""
    desk_dir = demo_dir / "desks" / desk
    return load_desk(desk_dir, (desk_dir / "passphrase.txt").read_text().strip())


def _demo_storage(demo_dir: Path) -> Storage:
    storage = Storage(Config.load(demo_dir / CONFIG_NAME))
    # As an operator command does: never the server's cleanup.
    storage.open(serving=False)
    return storage


def add_transfer_key(demo_dir: Path, desk: str, key: VerifyKey) -> None:
    """Register a transfer machine's key for ``desk`` (`intake-server desk add-transfer-key`)."""
    storage = _demo_storage(demo_dir)
    try:
        store = StaffStore(storage)
        store.open()
        store.add_transfer_key(desk, key)
    finally:
        storage.close()


async def submit_offline(demo_dir: Path, desks: tuple[str, ...], report: bytes,
                         attachments: tuple[bytes, ...] = (), count: int = 1,
                         day: dt.date | None = None) -> list[str]:
    """``count`` submissions stored through the real storage path without the source app
    (and so without a codename's Argon2id), beside the server or while it is stopped:
    the report and its attachments, under random ids. Returns the ids."""
    storage = _demo_storage(demo_dir)
    keyring = Keyring.load(demo_dir / "keyring.json")
    recipients = [parse_recipient(keyring.get(d).recipient) for d in desks]
    sids = []
    try:
        for _ in range(count):
            txn = storage.begin(recipients, day=day)
            for content in attachments:
                txn.new_file("attachment").write(content)
            txn.new_file("report").write(report)
            sids.append(new_id())
            await txn.commit(submission_id=sids[-1], desks=list(desks), source_id="0" * 64,
                             reply_recipient=str(X25519Identity.generate().recipient()))
    finally:
        storage.close()
    return sids


class DemoStaff:
    """The transfer machine's side of a demo server's staff app (support.server_process),
    with bundles signed by the demo triage desk's key."""

    def __init__(self, server: Any, transfer: SigningKey) -> None:
        self.server = server
        self.transfer = transfer
        self.desk_key = demo_desk_keys(server.demo_dir, "triage").signing_key
        self.server_key = VerifyKey.from_text(
            (server.demo_dir / "server-verify.key").read_text().split()[-1])

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = sign_request(self.transfer, method=method, path=path, desk="triage",
                               body_sha256=hashlib.sha256(body).hexdigest())
        url = f"http://127.0.0.1:{self.server.staff_port}{path}"
        async with aiohttp.ClientSession() as http, \
                http.request(method, url, data=body or None, headers=headers) as resp:
            return resp.status, await resp.read()

    def ack(self, ids: list[str]) -> bytes:
        doc = {"format": "amana-ack", "version": 1, "desk": "triage", "ids": ids}
        return bundle_bytes("ack", "triage", {"ack.json": json.dumps(doc).encode()},
                            self.desk_key)

    def outbox(self, items: list[dict[str, Any]], files: dict[str, bytes]) -> bytes:
        doc = {"format": "amana-outbox", "version": 1, "desk": "triage", "items": items}
        return bundle_bytes("outbox", "triage", {"outbox.json": json.dumps(doc).encode(),
                                                 **files}, self.desk_key)
