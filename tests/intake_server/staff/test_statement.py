"""The server's statement in every desk export (index.json version 2, ADR 0007): what
the desk holds unacknowledged before its cursor, and what was deleted before the desk
acknowledged it, through the staff app's signed export route."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from intake_server.staff.app import STAFF_STORE
from intake_server.storage import utc_today
from support.staff import Site, ack_bundle, fetch, read_export, signed, submit


async def _index(staff: Any, site: Site, tmp_path: Path, desk: str, after: str = "0"
                 ) -> dict[str, Any]:
    raw, _ = await fetch(staff, site, desk, after)
    return read_export(raw, tmp_path, site, desk)["index"]


async def _ack(staff: Any, site: Site, desk: str, ids: list[str]) -> None:
    body = ack_bundle(site, desk, ids)
    path = f"/v1/desks/{desk}/acks"
    resp = await staff.post(path, data=body, headers=signed(site, desk, "POST", path, body))
    assert resp.status == 200, await resp.text()


async def test_the_export_states_what_waits_before_its_cursor(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    # On two days: within a day exports go by random id, not by arrival (schema v3).
    first = await submit(site, ("triage",), b"first", day=utc_today() - dt.timedelta(days=1))
    second = await submit(site, ("triage", "forensics"), b"second")
    whole = await _index(staff, site, tmp_path, "triage")
    assert whole["version"] == 3  # the export carries the keyring (ADR 0011)
    assert whole["after"] == "0"
    assert [i["id"] for i in whole["items"]] == [first, second]
    assert whole["unacknowledged"] == 2
    assert whole["before_cursor"] == {"count": 0, "ids": []}
    assert whole["deleted_unacknowledged"] == []

    # A cursor past both (as an edited cursor.json asks): nothing carried, both named.
    skipped = await _index(staff, site, tmp_path, "triage", after=whole["cursor"])
    assert skipped["items"] == []
    assert skipped["before_cursor"] == {"count": 2, "ids": [first, second]}
    # Another desk's statement is its own.
    other = await _index(staff, site, tmp_path, "forensics", after="999")
    assert other["before_cursor"] == {"count": 1, "ids": [second]}

    # Acknowledged items are no longer awaited.
    await _ack(staff, site, "triage", [first])
    after_ack = await _index(staff, site, tmp_path, "triage", after=whole["cursor"])
    assert after_ack["unacknowledged"] == 1
    assert after_ack["before_cursor"] == {"count": 1, "ids": [second]}


async def test_retention_says_what_it_deleted_unacknowledged_for_one_period(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    today = utc_today()
    day = today - dt.timedelta(days=30)
    both = await submit(site, ("triage", "forensics"), b"old", day=day)
    acked = await submit(site, ("triage",), b"acked", day=day)
    await _index(staff, site, tmp_path, "triage")  # numbers them
    # Forensics acknowledged its copy; triage acknowledged the second.
    await _ack(staff, site, "forensics", [both])
    await _ack(staff, site, "triage", [acked])
    store = staff.server.app[STAFF_STORE]
    assert store.expire(today, 30) == {"submissions": 1, "replies": 0}

    triage = await _index(staff, site, tmp_path, "triage")
    assert triage["deleted_unacknowledged"] == [
        {"id": both, "day": day.isoformat(), "deleted": today.isoformat()}]
    assert triage["before_cursor"]["count"] == 0
    # Forensics had acknowledged it: nothing to tell.
    assert (await _index(staff, site, tmp_path, "forensics"))["deleted_unacknowledged"] == []
    # The record itself goes after one retention period.
    store.expire(today + dt.timedelta(days=29), 30)
    assert len((await _index(staff, site, tmp_path, "triage"))["deleted_unacknowledged"]) == 1
    store.expire(today + dt.timedelta(days=30), 30)
    assert (await _index(staff, site, tmp_path, "triage"))["deleted_unacknowledged"] == []


async def test_an_operator_deletion_is_told_as_well(
    site: Site, staff: Any, tmp_path: Path
) -> None:
    sid = await submit(site, ("triage",), b"x")
    staff.server.app[STAFF_STORE].delete_submission(sid)
    index = await _index(staff, site, tmp_path, "triage")
    assert [d["id"] for d in index["deleted_unacknowledged"]] == [sid]
