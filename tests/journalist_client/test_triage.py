"""Triage library: the taxonomy copy, fields and history, and hostile reports end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from journalist_client import triage
from journalist_client.importer import import_bundle
from journalist_client.taxonomy import CATEGORIES, CATEGORY_CODES, SEVERITIES
from journalist_client.vault import Vault

from .conftest import Server, report_doc
from .test_schema import CASES

TAXONOMY = Path(__file__).resolve().parents[1] / "data" / "taxonomy.md"


def test_categories_are_the_taxonomys() -> None:
    text = TAXONOMY.read_text(encoding="utf-8")
    tops = re.findall(r"^### \d+\. `([a-z]+)`", text, re.M)
    assert tops == list(CATEGORIES)
    subs = set(re.findall(r"^\| `([a-z]+\.[a-z_]+)` \|", text, re.M))
    assert subs == CATEGORY_CODES - set(CATEGORIES)
    assert set(re.findall(r"^\| \*\*(S[1-5])\*\* \|", text, re.M)) == set(SEVERITIES)


def _import(v: Vault, server: Server, *docs: dict[str, object]) -> list[str]:
    items = [server.item(d) for d in docs]
    import_bundle(v, server.bundle(items), progress=False)
    return [it.id for it in items]


def test_set_records_history(desk_vault: Vault, server: Server) -> None:
    [rid] = _import(desk_vault, server, report_doc())
    changes = triage.set_fields(desk_vault, rid, status="in-progress", severity="s1",
                                category="seized.border_checkpoint", assign="Rania K.",
                                tags=["border"], untags=["absent"])
    assert changes == ["status: new → in-progress", "severity: - → S1",
                       "category: - → seized.border_checkpoint",
                       "assignee: - → Rania K.", "tag added: border"]
    triage.set_fields(desk_vault, rid, untags=["border"], assign="")
    fields = [(h.who, h.field, h.old, h.new) for h in triage.history(desk_vault, rid)]
    assert fields[-2:] == [("rania", "assignee", "Rania K.", ""), ("rania", "tag", "border", "")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", h.at)
               for h in triage.history(desk_vault, rid))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"status": "done"}, "status must be"), ({"severity": "S6"}, "severity must be"),
    ({"category": "spyware.made_up"}, "unknown category"),
    ({"assign": "\x1b[31mred"}, "printable"), ({"tags": ["two words"]}, "without spaces"),
])
def test_set_refuses_bad_values(desk_vault: Vault, server: Server, kwargs: dict[str, object],
                                message: str) -> None:
    [rid] = _import(desk_vault, server, report_doc())
    with pytest.raises(triage.TriageError, match=message):
        triage.set_fields(desk_vault, rid, **kwargs)  # type: ignore[arg-type]


def test_ids_by_prefix(desk_vault: Vault, server: Server) -> None:
    [rid] = _import(desk_vault, server, report_doc())
    assert triage.get_item(desk_vault, rid[:6])["id"] == rid
    with pytest.raises(triage.TriageError, match="no report"):
        triage.get_item(desk_vault, "0" * 32 if rid[0] != "0" else "1" * 32)
    with pytest.raises(triage.TriageError, match="hex"):
        triage.get_item(desk_vault, "%")  # LIKE wildcards are not ids


def test_list_by_date_range(desk_vault: Vault, server: Server) -> None:
    old, new = report_doc(), report_doc()
    old["received_day"] = "2026-01-05"
    a, b = _import(desk_vault, server, old, new)
    got = [r.id for r in triage.list_items(desk_vault, triage.Filters(until="2026-06-01"))]
    assert got == [a]
    got = [r.id for r in triage.list_items(desk_vault, triage.Filters(since="2026-06-01"))]
    assert got == [b]
    with pytest.raises(triage.TriageError, match="YYYY-MM-DD"):
        triage.list_items(desk_vault, triage.Filters(since="yesterday"))


def test_notes_are_bounded_and_searchable(desk_vault: Vault, server: Server) -> None:
    [rid] = _import(desk_vault, server, report_doc())
    with pytest.raises(triage.TriageError, match="empty"):
        triage.add_note(desk_vault, rid, "  ")
    with pytest.raises(triage.TriageError, match="at most"):
        triage.add_note(desk_vault, rid, "x" * (triage.MAX_NOTE_CHARS + 1))
    triage.add_note(desk_vault, rid, "المصدر في الأردن")
    [hit] = triage.run_search(desk_vault, "الاردن")
    assert hit.id == rid
    assert hit.snippet.startswith("note: ")


@pytest.mark.parametrize("case", [c for c in CASES if c != "10 MB string"])
def test_hostile_reports_end_to_end_are_quarantined(desk_vault: Vault, server: Server,
                                                    case: str) -> None:
    raw, message = CASES[case]
    it = server.item(raw)
    result = import_bundle(desk_vault, server.bundle([it]), progress=False)
    assert result.imported == []
    [(qid, reason)] = result.quarantined
    assert qid == it.id
    assert message in reason


def test_ten_megabyte_report_is_refused_before_decryption(desk_vault: Vault,
                                                           server: Server) -> None:
    raw, _ = CASES["10 MB string"]
    it = server.item(raw)
    result = import_bundle(desk_vault, server.bundle([it]), progress=False)
    assert "larger than 1048576 bytes" in result.quarantined[0][1]


def test_an_index_built_under_older_rules_is_rebuilt(desk_vault: Vault, server: Server) -> None:
    [rid] = _import(desk_vault, server, report_doc(description="اخترقوا هاتفي"))
    assert [h.id for h in triage.run_search(desk_vault, "هاتف")] == [rid]
    assert not triage.refresh_search_index(desk_vault)  # built under today's rules
    # As a vault from before light stems: no rules recorded, no stem in the index.
    desk_vault.conn.execute("DELETE FROM meta WHERE key = 'search_rules'")
    desk_vault.conn.execute("UPDATE search SET body = 'اخترقوا هاتفي'")
    assert triage.run_search(desk_vault, "هاتف") == []
    assert triage.refresh_search_index(desk_vault)
    assert [h.id for h in triage.run_search(desk_vault, "هاتف")] == [rid]
    assert desk_vault.is_changed  # the caller saves the rebuilt index
