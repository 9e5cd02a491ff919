"""A desk's previous key on the staff API (ADR 0011): it may still acknowledge what was
encrypted to it (items of its replacement day or earlier) until all of that is
acknowledged, and nothing else, ever; a lost key never; the exports carry the keyring."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from intake_server.operator import drop_lost_key_items
from intake_server.staff import create_staff_app
from intake_server.staff.app import STAFF_STORE
from intake_server.staff.bundles import lost_key_items
from intake_server.storage import utc_today
from keys.age import X25519Identity
from keys.bundle import open_bundle
from keys.keyring import Desk, Keyring
from keys.signing import SigningKey
from keys.transition import sign_transition, verify_transition
from support.staff import DESKS, Site, ack_bundle, fetch, make_site, post, submit

YESTERDAY = utc_today() - dt.timedelta(days=1)


def _rotate(site: Site, *, lost: bool) -> SigningKey:
    """Give triage new keys in the site's keyring, replaced yesterday; the new signing key."""
    keyring = Keyring.load(site.config.keyring)
    old = keyring.get("triage")
    assert old is not None
    identity, signing = X25519Identity.generate(), SigningKey.generate()
    new = Desk.create("triage", dict(old.names), str(identity.recipient()),
                      str(signing.verify_key))
    t = None if lost else verify_transition(
        sign_transition("triage", old_recipient=old.recipient, old_key=site.signing["triage"],
                        new_recipient=new.recipient, new_key=signing),
        old_verify_key=old.verify_key)
    keyring = keyring.replacing(old.replaced_by(new, day=YESTERDAY.isoformat(), transition=t))
    keyring.save(site.config.keyring, overwrite=True)
    return signing


async def _client(site: Site, aiohttp_client: Any) -> Any:
    app = create_staff_app(site.config, signing_key=site.server_key, storage=site.storage)
    client = await aiohttp_client(app)
    for desk in DESKS:
        app[STAFF_STORE].add_transfer_key(desk, site.transfer[desk].verify_key)
    return client


async def _ack(staff: Any, site: Site, ids: list[str], key: SigningKey) -> tuple[int, Any]:
    resp = await post(staff, site, "triage", "acks", ack_bundle(site, "triage", ids, key))
    return resp.status, await resp.json()


async def test_the_previous_key_acks_only_what_was_encrypted_to_it(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    site = make_site(tmp_path)
    before = await submit(site, ("triage",), b"old", day=YESTERDAY - dt.timedelta(days=1))
    on_the_day = await submit(site, ("triage",), b"old, same day", day=YESTERDAY)
    after = await submit(site, ("triage",), b"new", day=utc_today())
    new_key = _rotate(site, lost=False)
    staff = await _client(site, aiohttp_client)
    old_key = site.signing["triage"]

    # Signed by the old key: the later item is left alone.
    status, body = await _ack(staff, site, [before, after], old_key)
    assert status == 200, body
    assert body == {"acknowledged": 1, "deleted": 1}
    status, body = await _ack(staff, site, [on_the_day], old_key)
    assert (status, body) == (200, {"acknowledged": 1, "deleted": 1})

    # Drained: the old key is not trusted any more, for anything.
    status, body = await _ack(staff, site, [after], old_key)
    assert status == 400
    assert "not trusted" in body["error"]
    status, body = await _ack(staff, site, [after], new_key)
    assert (status, body) == (200, {"acknowledged": 1, "deleted": 1})


async def test_a_lost_key_is_never_trusted_and_its_items_are_counted(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    site = make_site(tmp_path)
    stranded = await submit(site, ("triage",), b"to the lost key", day=YESTERDAY)
    await submit(site, ("triage",), b"to the new key", day=utc_today())
    new_key = _rotate(site, lost=True)
    staff = await _client(site, aiohttp_client)
    status, body = await _ack(staff, site, [stranded], site.signing["triage"])
    assert status == 400
    assert "not trusted" in body["error"]
    store = staff.server.app[STAFF_STORE]
    assert lost_key_items(store, Keyring.load(site.config.keyring)) == {"triage": 1}
    # The desk's new key can release them (it cannot read them either).
    status, body = await _ack(staff, site, [stranded], new_key)
    assert (status, body) == (200, {"acknowledged": 1, "deleted": 1})
    assert lost_key_items(store, Keyring.load(site.config.keyring)) == {}


async def test_the_export_carries_the_keyring(tmp_path: Path, aiohttp_client: Any) -> None:
    site = make_site(tmp_path)
    await submit(site, ("triage",), b"x")
    _rotate(site, lost=False)
    staff = await _client(site, aiohttp_client)
    raw, _ = await fetch(staff, site, "triage")
    path = tmp_path / "export.bundle"
    path.write_bytes(raw)
    with open_bundle(path, {"server": site.server_key.verify_key}, kind="desk-export") as b:
        index = json.loads(b.read("index.json"))
        carried = Keyring.from_json(b.read("keyring.json"))
    assert index["version"] == 3
    assert carried.to_json() == Keyring.load(site.config.keyring).to_json()
    (prev,) = carried.get("triage").previous  # type: ignore[union-attr]
    assert prev.replaced == YESTERDAY.isoformat()


async def test_the_operator_drops_what_only_a_lost_key_could_open(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    alone = await submit(site, ("triage",), b"only triage", day=YESTERDAY)
    shared = await submit(site, ("triage", "forensics"), b"both", day=YESTERDAY)
    later = await submit(site, ("triage",), b"new key", day=utc_today())
    _rotate(site, lost=True)
    assert drop_lost_key_items(site.config, "triage") == {"released": 2, "deleted": 1}
    pending = {r[0] for r in site.storage.db.execute(
        "SELECT submission_id FROM submission_desks d WHERE NOT EXISTS (SELECT 1 FROM acks a"
        " WHERE a.submission_id = d.submission_id AND a.desk_id = d.desk_id)")}
    assert alone not in pending
    assert shared in pending  # still forensics'
    assert later in pending
    assert drop_lost_key_items(site.config, "triage") == {"released": 0, "deleted": 0}
