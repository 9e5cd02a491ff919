"""The staff app: signed export bundles, acks that delete, replies in, every refusal.

Submissions go in through the source app's real storage path (Storage.begin /
Transaction.commit); the staff app is driven over HTTP with aiohttp's test client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from intake_server.staff.app import STAFF_STORE
from intake_server.storage import new_id, utc_today
from keys import fs
from keys.age import X25519Identity, decrypt, encrypt
from keys.keyring import Keyring
from keys.request_auth import sign_request
from keys.signing import SigningKey
from support.staff import (
    DESKS,
    Site,
    ack_bundle,
    bundle_bytes,
    fetch,
    outbox_bundle,
    post,
    read_export,
    signed,
    submit,
)


async def test_export_to_two_desks_then_acks_delete_only_when_both_have_imported(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    sid = await submit(site, ("triage", "forensics"), b'{"report": 1}', (b"photo", b"log"))
    for desk in DESKS:
        raw, cursor = await fetch(staff, site, desk)
        export = read_export(raw, tmp_path, site, desk)
        assert [i["id"] for i in export["index"]["items"]] == [sid]
        assert export["docs"][sid] == [b'{"report": 1}', b"photo", b"log"]
        assert cursor == export["index"]["cursor"]
    stored = set(site.config.store_dir.iterdir())
    assert len(stored) == 3

    resp = await post(staff, site, "triage", "acks", ack_bundle(site, "triage", [sid]))
    assert resp.status == 200
    assert await resp.json() == {"acknowledged": 1, "deleted": 0}
    assert set(site.config.store_dir.iterdir()) == stored  # forensics has not imported yet
    raw, _ = await fetch(staff, site, "triage")
    assert read_export(raw, tmp_path, site, "triage")["index"]["items"] == []

    resp = await post(staff, site, "forensics", "acks", ack_bundle(site, "forensics", [sid]))
    assert await resp.json() == {"acknowledged": 1, "deleted": 1}
    assert list(site.config.store_dir.iterdir()) == []
    _assert_dated_to_the_day(site)
    assert site.storage.submissions() == []


async def test_cursor_returns_only_later_items_and_refetch_is_identical(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    first = await submit(site, ("triage",), b"one")
    raw1, cursor = await fetch(staff, site, "triage")
    again, _ = await fetch(staff, site, "triage")
    assert again == raw1  # a dropped download can be fetched again byte for byte
    second = await submit(site, ("triage",), b"two")
    raw2, _ = await fetch(staff, site, "triage", after=cursor)
    ids = [i["id"] for i in read_export(raw2, tmp_path, site, "triage")["index"]["items"]]
    assert ids == [second]
    assert first != second
    path = f"/v1/desks/triage/bundle?after={cursor}"
    resp = await staff.get(
        path, headers={**signed(site, "triage", "GET", path), "Range": "bytes=10-"}
    )
    assert resp.status == 206
    assert await resp.read() == raw2[10:]
    # No clock in the answer (FileResponse would send the bundle's mtime, ETag to the
    # nanosecond), and the cached bundle on disk is dated to the day.
    for name in ("Date", "Last-Modified", "ETag", "Server"):
        assert name not in resp.headers
    outgoing = site.config.data_dir / "outgoing"
    for entry in [outgoing, *outgoing.iterdir()]:
        assert entry.stat().st_mtime == fs.day_timestamp(utc_today())


def _assert_dated_to_the_day(site: Site) -> None:
    """Deleting (by acknowledgement or retention) leaves no time finer than the day on
    the directories it touched or the database files."""
    data = site.config.data_dir
    for path in (data, data / "store", data / "outgoing", data / "replies",
                 site.config.db_path):
        assert path.stat().st_mtime == fs.day_timestamp(utc_today()), path


async def test_only_the_desk_signing_key_can_acknowledge(site: Site, staff: Any) -> None:
    sid = await submit(site, ("triage",), b"evidence")
    # A stolen transfer machine holds the transfer credential, not the desk signing key.
    forged = ack_bundle(site, "triage", [sid], key=site.transfer["triage"])
    resp = await post(staff, site, "triage", "acks", forged)
    assert resp.status == 400
    other_desk = ack_bundle(site, "triage", [sid], key=site.signing["forensics"])
    assert (await post(staff, site, "triage", "acks", other_desk)).status == 400
    assert len(list(site.config.store_dir.iterdir())) == 1


@pytest.mark.parametrize(
    "case", ["unsigned", "wrong-key", "other-desk", "replayed", "stale", "tampered-body"]
)
async def test_requests_are_refused_before_anything_changes(
    site: Site, staff: Any, case: str
) -> None:
    sid = await submit(site, ("triage",), b"evidence")
    body = ack_bundle(site, "triage", [sid])
    path = "/v1/desks/triage/acks"
    headers = signed(site, "triage", "POST", path, body)
    expected = 401
    if case == "unsigned":
        headers = {}
    elif case == "wrong-key":
        headers = signed(site, "triage", "POST", path, body, key=SigningKey.generate())
    elif case == "other-desk":
        headers = signed(site, "forensics", "POST", path, body)
        expected = 403
    elif case == "replayed":
        assert (await staff.post(path, data=body, headers=headers)).status == 200
        sid = await submit(site, ("triage",), b"more evidence")
    elif case == "stale":
        headers = sign_request(
            site.transfer["triage"],
            method="POST",
            path=path,
            desk="triage",
            body_sha256=hashlib.sha256(body).hexdigest(),
            now=1_000_000_000,
        )
    elif case == "tampered-body":
        body = body[:-1] + bytes([body[-1] ^ 1])
        expected = 400
    resp = await staff.post(path, data=body, headers=headers)
    assert resp.status == expected
    assert site.storage.submissions() != []
    assert "not authorised" in (await resp.json())["error"] or expected == 400


@pytest.mark.parametrize("case", ["truncated", "trailing", "manifest-mismatch", "not-a-bundle"])
async def test_broken_bundles_change_nothing(site: Site, staff: Any, case: str) -> None:
    sid = await submit(site, ("triage",), b"evidence")
    body = ack_bundle(site, "triage", [sid])
    if case == "truncated":
        body = body[: len(body) // 2]
    elif case == "trailing":
        body += b"x"
    elif case == "manifest-mismatch":
        body = body.replace(b'"ids"', b'"idz"', 1)  # a file's bytes no longer match its hash
    else:
        body = b"hello"
    resp = await post(staff, site, "triage", "acks", body)
    assert resp.status == 400
    assert len(site.storage.submissions()) == 1
    assert list((site.config.data_dir / "staff-incoming").iterdir()) == []


def reply_outbox(
    site: Site, source: X25519Identity, plaintext: bytes, key: SigningKey | None = None
) -> bytes:
    """An outbox bundle with one reply to ``source``, as the triage desk's client makes it."""
    reply_id = new_id()
    reply = encrypt(plaintext, [source.recipient(), site.identities["triage"].recipient()])
    item = {"type": "reply", "id": reply_id, "to": str(source.recipient()),
            "file": f"{reply_id}.reply.age"}
    return outbox_bundle(site, [item], {f"{reply_id}.reply.age": reply}, key)


async def test_reply_bundle_is_stored_for_the_source(site: Site, staff: Any) -> None:
    source = X25519Identity.generate()
    doc = {
        "format": "amana-reply",
        "version": 1,
        "desk": "triage",
        "day": "2026-11-28",
        "body": "Which phone model?",
    }
    body = reply_outbox(site, source, json.dumps(doc).encode())
    resp = await post(staff, site, "triage", "outbox", body)
    assert resp.status == 200, await resp.text()
    store = staff.server.app[STAFF_STORE]
    (stored,) = store.replies_for(str(source.recipient()))
    assert json.loads(decrypt(store.reply_path(stored["id"]).read_bytes(), [source])) == doc
    # The transfer credential alone cannot speak to a source.
    forged = reply_outbox(site, source, json.dumps(doc).encode(), key=site.transfer["triage"])
    assert (await post(staff, site, "triage", "outbox", forged)).status == 400
    assert len(store.replies_for(str(source.recipient()))) == 1


async def test_retention_deletes_exactly_what_has_expired(site: Site, staff: Any) -> None:
    today = dt.date(2026, 11, 28)
    old = await submit(site, ("triage",), b"old", day=today - dt.timedelta(days=30))
    young = await submit(site, ("triage",), b"young", day=today - dt.timedelta(days=29))
    store = staff.server.app[STAFF_STORE]
    assert store.expire(today, 30) == {"submissions": 1, "replies": 0}
    remaining = [s["id"] for s in site.storage.submissions()]
    assert remaining == [young]
    assert old not in remaining
    assert len(list(site.config.store_dir.iterdir())) == 1
    _assert_dated_to_the_day(site)


async def test_health_needs_no_auth_and_says_nothing_specific(staff: Any) -> None:
    resp = await staff.get("/v1/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "disk": "ok"}
    assert "Server" not in resp.headers
    assert "Date" not in resp.headers
    assert resp.headers["Cache-Control"] == "no-store"


async def test_usb_route_does_the_same_as_the_staff_onion(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    from intake_server.staff.bundles import BundleRefused, apply_bundle, build_export

    store = staff.server.app[STAFF_STORE]
    sid = await submit(site, ("triage",), b"evidence")
    out = tmp_path / "usb-export.bundle"
    path, cursor, items = build_export(store, "triage", 0, site.server_key, out=out)
    assert path == out
    assert [i.id for i in items] == [sid]
    assert read_export(out.read_bytes(), tmp_path, site, "triage")["index"]["cursor"] == str(cursor)
    ack = tmp_path / "ack.bundle"
    ack.write_bytes(ack_bundle(site, "triage", [sid]))
    keyring = Keyring.load(site.config.keyring)
    result = apply_bundle(store, ack, keyring)
    assert result == {"kind": "ack", "desk": "triage", "acknowledged": 1, "deleted": 1}
    forged = tmp_path / "forged.bundle"
    forged.write_bytes(ack_bundle(site, "triage", [sid], key=site.transfer["triage"]))
    with pytest.raises(BundleRefused, match="trusted|signed|signer"):
        apply_bundle(store, forged, keyring)


async def test_an_export_never_exceeds_the_bundle_file_limit(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    store = staff.server.app[STAFF_STORE]
    # All of today: exported in the order of their random ids, not of arrival.
    ids = sorted([await submit(site, ("triage",), b"r", (b"a", b"b")) for _ in range(4)])
    first = store.pending("triage", 0, max_files=7)  # room for two items of three files
    assert [i.id for i in first] == ids[:2]
    rest = store.pending("triage", first[-1].seq, max_files=7)
    assert [i.id for i in rest] == ids[2:]


async def test_an_export_is_split_by_ciphertext_size(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    store = staff.server.app[STAFF_STORE]
    # One a day: exports go by day, and within a day by random id.
    days = [utc_today() - dt.timedelta(days=5 - n) for n in range(5)]
    small = [await submit(site, ("triage",), b"r", (b"x" * 100_000,), day=days[n])
             for n in range(3)]
    large = await submit(site, ("triage",), b"r", (b"y" * 900_000,), day=days[3])
    last = await submit(site, ("triage",), b"r", (b"z",), day=days[4])
    batches, after = [], 0
    while items := store.pending("triage", after, max_bytes=250_000):
        batches.append([i.id for i in items])
        after = items[-1].seq
    # Two ~100 KB submissions fit under 250 KB, three do not; one larger than the
    # cap comes alone rather than never.
    assert batches == [small[:2], [small[2]], [large], [last]]


@pytest.mark.parametrize(
    "ack_json",
    [
        b'{"format": "amana-ack", "version": 1, "desk": "triage", "ids": [], "ids": ["%s"]}',
        b'{"format": "amana-ack", "version": 1, "desk": "triage", "ids": [NaN]}',
        b'\xff{"format": "amana-ack"}',
        b'{"format": "amana-ack", "version": 1, "desk": "triage", "ids": [[[[[[]]]]]]}',
    ],
    ids=["duplicate-key", "nan", "not-utf8", "deep"],
)
async def test_ack_json_is_parsed_strictly(site: Site, staff: Any, ack_json: bytes) -> None:
    sid = await submit(site, ("triage",), b"evidence")
    body = bundle_bytes(
        "ack", "triage", {"ack.json": ack_json.replace(b"%s", sid.encode())}, site.signing["triage"]
    )
    resp = await post(staff, site, "triage", "acks", body)
    assert resp.status == 400
    assert len(site.storage.submissions()) == 1


def _referral_bundle(
    site: Site, to_desk: str, names: list[str] | None = None, key: SigningKey | None = None
) -> bytes:
    ref = new_id()
    files = names or [f"{ref}.json.age", f"{ref}.a1.age"]
    doc = encrypt(b'{"referred": true}', [site.identities["forensics"].recipient()])
    item = {"type": "referral", "id": ref, "to_desk": to_desk, "files": files}
    return outbox_bundle(site, [item], {name: doc for name in files}, key)


async def test_a_referral_is_filed_for_the_other_desk(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    resp = await post(staff, site, "triage", "outbox", _referral_bundle(site, "forensics"))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"replies": 0, "referrals": 1}
    raw, _ = await fetch(staff, site, "forensics")
    (docs,) = read_export(raw, tmp_path, site, "forensics")["docs"].values()
    assert docs == [b'{"referred": true}', b'{"referred": true}']
    raw, _ = await fetch(staff, site, "triage")
    assert read_export(raw, tmp_path, site, "triage")["index"]["items"] == []


@pytest.mark.parametrize("case", ["unknown-desk", "own-desk", "misnamed", "transfer-key"])
async def test_bad_referrals_change_nothing(site: Site, staff: Any, case: str) -> None:
    body = {
        "unknown-desk": lambda: _referral_bundle(site, "nobody"),
        "own-desk": lambda: _referral_bundle(site, "triage"),
        "misnamed": lambda: _referral_bundle(site, "forensics", names=["x.json.age"]),
        "transfer-key": lambda: _referral_bundle(site, "forensics", key=site.transfer["triage"]),
    }[case]()
    resp = await post(staff, site, "triage", "outbox", body)
    assert resp.status == 400
    assert site.storage.submissions() == []
    assert list(site.config.store_dir.iterdir()) == []


async def test_an_ack_leaves_no_copy_in_cached_exports_or_the_wal(site: Site, staff: Any) -> None:
    sid = await submit(site, ("triage",), b"evidence")
    await fetch(staff, site, "triage")  # caches an export bundle holding the ciphertext
    outgoing = site.config.data_dir / "outgoing"
    assert list(outgoing.iterdir())
    resp = await post(staff, site, "triage", "acks", ack_bundle(site, "triage", [sid]))
    assert (await resp.json())["deleted"] == 1
    assert list(outgoing.iterdir()) == []
    wal = Path(f"{site.config.db_path}-wal")
    if wal.exists():
        assert sid.encode() not in wal.read_bytes()
    assert sid.encode() not in site.config.db_path.read_bytes()


async def test_a_delivered_outbox_bundle_cannot_be_replayed(site: Site, staff: Any) -> None:
    # A stolen transfer machine holds old signed outbox bundles: re-posting one under a
    # fresh request signature must not bring back a reply the source deleted.
    source = X25519Identity.generate()
    body = reply_outbox(site, source, b'{"format": "amana-reply"}')
    assert (await post(staff, site, "triage", "outbox", body)).status == 200
    store = staff.server.app[STAFF_STORE]
    (stored,) = store.replies_for(str(source.recipient()))
    assert store.delete_reply(stored["id"], str(source.recipient()))
    resp = await post(staff, site, "triage", "outbox", body)
    assert resp.status == 400
    assert "already delivered" in (await resp.json())["error"]
    assert store.replies_for(str(source.recipient())) == []
