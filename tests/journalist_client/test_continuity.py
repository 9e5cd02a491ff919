"""The vault's continuity check (journalist_client.continuity, ADR 0007) against
exports signed with a test server key: what the statement in index.json version 2
must look like, and what the vault makes of it. The real server and transfer machine
are in tests/integration/test_transfer_continuity.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from journalist_client import continuity
from journalist_client.importer import ImportRefused, import_bundle
from journalist_client.vault import Vault
from journalist_client.vault import unlock as unlock_vault

from .conftest import Item, Run, Server, report_doc


def _v2(server: Server, items: list[Item], *, before: list[str] | None = None,
        count: int | None = None, deleted: list[dict[str, str]] | None = None,
        **extra: Any) -> Path:
    before = before or []
    index = {
        "format": "amana-desk-export", "version": 2, "desk": "triage", "after": "5",
        "cursor": "9", "unacknowledged": len(before) + len(items),
        "before_cursor": {"count": len(before) if count is None else count, "ids": before},
        "deleted_unacknowledged": deleted or [],
        "items": [{"id": it.id, "type": it.type, "day": "2026-11-28",
                   "files": [f"{it.id}.json.age"]} for it in items],
        **extra,
    }
    return server.bundle(items, index=index)


def test_items_held_back_by_the_cursor_are_missing_until_they_arrive_in_any_order(
    desk_vault: Vault, server: Server
) -> None:
    early, late = server.item(report_doc()), server.item(report_doc())
    # The later export, imported first, says the earlier item should be here already.
    r = import_bundle(desk_vault, _v2(server, [late], before=[early.id]), progress=False)
    assert r.checked
    assert continuity.check(desk_vault).missing == (early.id,)
    # An export older than that statement cannot clear it; only the item itself does.
    import_bundle(desk_vault, _v2(server, []), progress=False)
    assert continuity.check(desk_vault).missing == (early.id,)
    import_bundle(desk_vault, _v2(server, [early]), progress=False)
    assert continuity.check(desk_vault) == continuity.Continuity(missing=(), losses=())


def test_a_deletion_is_a_loss_only_for_an_item_never_received(
    desk_vault: Vault, server: Server
) -> None:
    held = server.item(report_doc())
    import_bundle(desk_vault, _v2(server, [held]), progress=False)
    gone = "a" * 32
    deleted = [{"id": gone, "day": "2026-10-01", "deleted": "2026-10-31"},
               {"id": held.id, "day": "2026-11-28", "deleted": "2026-12-01"}]
    r = import_bundle(desk_vault, _v2(server, [], before=[gone], deleted=deleted),
                      progress=False)
    assert r.losses == [continuity.Loss(gone, "2026-10-01", "2026-10-31")]
    state = continuity.check(desk_vault)
    assert state.losses == (continuity.Loss(gone, "2026-10-01", "2026-10-31"),)
    assert state.missing == ()  # deleted, so no longer awaited
    # Told again by the next export: not a new loss.
    again = import_bundle(desk_vault, _v2(server, [], deleted=deleted), progress=False)
    assert again.losses == []


@pytest.mark.parametrize(("change", "message"), [
    ({"before_cursor": {"count": 0, "ids": ["b" * 32]}}, "at most count"),
    ({"before_cursor": {"count": 2, "ids": ["b" * 32, "b" * 32]}}, "distinct"),
    ({"before_cursor": {"count": 1}}, "exactly count, ids"),
    ({"before_cursor": {"count": True, "ids": []}}, "non-negative integer"),
    ({"unacknowledged": -1}, "non-negative integer"),
    ({"after": 5}, "after must be a string"),
    ({"deleted_unacknowledged": [{"id": "c" * 32, "day": "2026-02-30",
                                  "deleted": "2026-03-01"}]}, "YYYY-MM-DD"),
    ({"deleted_unacknowledged": [{"id": "C" * 32, "day": "2026-02-03",
                                  "deleted": "2026-03-01"}]}, "hex"),
    ({"extra": 1}, "wrong members for version 2"),
])
def test_a_malformed_statement_refuses_the_bundle_whole(
    desk_vault: Vault, server: Server, change: dict[str, Any], message: str
) -> None:
    it = server.item(report_doc())
    path = _v2(server, [it])
    index = {"format": "amana-desk-export", "version": 2, "desk": "triage", "after": "5",
             "cursor": "9", "unacknowledged": 1, "before_cursor": {"count": 0, "ids": []},
             "deleted_unacknowledged": [],
             "items": [{"id": it.id, "type": "report", "day": "2026-11-28",
                        "files": [f"{it.id}.json.age"]}]}
    index.update(change)
    path = server.bundle([it], index=index)
    with pytest.raises(ImportRefused, match=message):
        import_bundle(desk_vault, path, progress=False)
    assert desk_vault.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0


def test_import_raises_the_alarm_and_list_repeats_it(run: Run, server: Server) -> None:
    held_back = "d" * 32
    code, out, err = run("import", "--no-progress",
                         str(_v2(server, [server.item(report_doc())], before=[held_back])))
    assert code == 1
    assert "1 imported" in out
    assert "ALARM: the server holds 1 item(s) for desk triage that never reached" in err
    assert "tampered" in err
    code, out, err = run("list", "--json")
    assert code == 0
    assert out.startswith("[")  # the JSON document stays clean: the alarm is on stderr
    assert "ALARM" in err


def test_a_version_1_export_is_imported_with_a_warning(run: Run, server: Server) -> None:
    code, out, err = run("import", "--no-progress", str(server.bundle([server.item(report_doc())])))
    assert code == 0
    assert "1 imported" in out
    assert "continuity" in err
    assert "cannot be checked" in err


def test_a_vault_from_before_the_check_gets_its_tables(
    desk_vault: Vault, vault_dir: Path, passfile: Path
) -> None:
    # As saved by a client with the indicator tables (schema version 1) but not these.
    desk_vault.conn.execute("DROP TABLE expected")
    desk_vault.conn.execute("DROP TABLE losses")
    # Version 1 kept indicators as rows (migration 3 turns them into columns).
    desk_vault.conn.execute("DROP TABLE ioc_columns")
    desk_vault.conn.execute(
        "CREATE TABLE ioc_indicators (file TEXT NOT NULL, kind TEXT NOT NULL, value TEXT "
        "NOT NULL, family TEXT NOT NULL, indicator_id TEXT NOT NULL, stix_key TEXT NOT NULL, "
        "refs TEXT NOT NULL)")
    desk_vault.conn.execute("PRAGMA user_version = 1")
    desk_vault.save()
    desk_vault.close()
    again = unlock_vault(vault_dir, passfile.read_text().strip())
    try:
        assert continuity.check(again) == continuity.Continuity(missing=(), losses=())
    finally:
        again.close()
