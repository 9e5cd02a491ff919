"""The two small library additions the UI needed: an import progress callback, and
search snippets as marked pieces."""

from __future__ import annotations

from journalist_client import importer, search, triage
from journalist_client.vault import Vault

# The parent folder's builders: "journalist_client" on the path is the package itself.
from ..conftest import Server, report_doc  # noqa: TID252


def test_import_reports_progress_before_each_item(desk_vault: Vault, server: Server) -> None:
    items = [server.item(report_doc()) for _ in range(3)]
    seen: list[tuple[int, int]] = []
    r = importer.import_bundle(desk_vault, server.bundle(items), progress=False,
                               on_item=lambda done, total: seen.append((done, total)))
    assert len(r.imported) == 3
    assert seen == [(0, 3), (1, 3), (2, 3)]


def test_snippet_parts_mark_the_matches_and_agree_with_the_bracketed_snippet() -> None:
    fields = [("description", "وصلتني   رسالة [مشبوهة] من الإمارات عن\nبرنامج Pegasus اليوم")]
    query = search.parse_query("الإمارات pegasus")
    parts = search.snippet_parts(fields, query)
    assert parts[0] == ("description: ", False)
    assert [t for t, hit in parts if hit] == ["الإمارات", "Pegasus"]
    # A bracket the source typed stays text, never a mark.
    assert ("[", False) in parts or any("[" in t and not hit for t, hit in parts)
    assert search.snippet_text(parts) == search.raw_snippet(fields, query)
    assert search.snippet_text(parts) == (
        "description: وصلتني رسالة [مشبوهة] من [الإمارات] عن برنامج [Pegasus] اليوم")
    assert search.snippet_parts(fields, search.parse_query("absent")) == ()


def test_marked_search_returns_the_same_hits(desk_vault: Vault, server: Server) -> None:
    doc = report_doc(description="a Pegasus link arrived by SMS")
    importer.import_bundle(desk_vault, server.bundle([server.item(doc)]), progress=False)
    marked = triage.run_search_marked(desk_vault, "pegasus")
    assert [h for h, _ in marked] == triage.run_search(desk_vault, "pegasus")
    assert [t for t, hit in marked[0][1] if hit] == ["Pegasus"]


def test_a_failed_action_leaves_nothing_for_the_next_save(
        desk_vault: Vault, server: Server, vault_dir: object) -> None:
    from pathlib import Path

    from journalist_client.ui._worker import VaultWorker
    from journalist_client.vault import unlock

    from ..conftest import PASSPHRASE  # noqa: TID252

    doc = report_doc()
    importer.import_bundle(desk_vault, server.bundle([server.item(doc)]), progress=False)
    desk_vault.close()
    worker = VaultWorker()
    worker.unlock(lambda: unlock(Path(str(vault_dir)), PASSPHRASE))
    item = str(doc["submission_id"])

    def half_done(v: Vault) -> None:
        triage.add_note(v, item, "written, then the action failed")
        raise triage.TriageError("failed half-way")

    try:
        try:
            worker.call(half_done)
        except triage.TriageError:
            pass
        else:
            raise AssertionError("the action should have failed")
        # The next action saves: the half-done note must not be in what it saves.
        worker.call(lambda v: (triage.add_note(v, item, "the real note"), v.save()))
        notes = worker.call(lambda v: [n.text for n in triage.show_item(v, item).notes])  # type: ignore[union-attr]
        assert notes == ["the real note"]
    finally:
        worker.close()
    again = unlock(Path(str(vault_dir)), PASSPHRASE)
    try:
        shown = triage.show_item(again, item)
        assert [n.text for n in shown.notes] == ["the real note"]  # type: ignore[union-attr]
    finally:
        again.close()
