"""The vault's change journal (ADR 0010): cheap durable saves in a session, recovered
after a crash, compacted on close, and never a source of plaintext or of forged rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journalist_client import replies, triage, vault_journal
from journalist_client.importer import import_bundle
from journalist_client.vault import DB_FILE, Vault, unlock
from support.kills import NOTE_SAVER

from .conftest import PASSPHRASE, Server, report_doc

JOURNAL = vault_journal.JOURNAL_FILE


def dump(v: Vault) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, and the search index, in a comparable form."""
    tables = [name for (name,) in v.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'search_%' AND name != 'search'")]
    out = {t: sorted(v.conn.execute(f"SELECT rowid, * FROM {t}").fetchall(),  # noqa: S608
                     key=repr) for t in tables}
    # saved_at is the minute of the save, equal or not by the clock: not what is compared.
    out["meta"] = [r for r in out["meta"] if r[1] != "saved_at"]
    out["search"] = sorted(v.conn.execute("SELECT rowid, body FROM search").fetchall())
    return out


def abandon(v: Vault) -> None:
    """What kill -9 leaves: no close, no compaction; only the lock is released."""
    v.conn.close()
    os.close(v._lock)


def session(vault_dir: Path) -> Vault:
    v = unlock(vault_dir, PASSPHRASE)
    v.start_journal()
    return v


@pytest.fixture
def items(desk_vault: Vault, server: Server, vault_dir: Path) -> list[str]:
    its = [server.item(report_doc(description=f"رسالة رقم {i} pegasus")) for i in range(3)]
    import_bundle(desk_vault, server.bundle(its), progress=False)
    desk_vault.close()
    return [it.id for it in its]


def test_a_session_save_appends_to_the_journal_and_leaves_the_image(
        items: list[str], vault_dir: Path) -> None:
    v = session(vault_dir)
    image = (vault_dir / DB_FILE).read_bytes()
    triage.set_fields(v, items[0], status="triaged", tags=["pegasus"])
    v.save()
    triage.add_note(v, items[0], "called back")
    v.save()
    assert (vault_dir / DB_FILE).read_bytes() == image
    journal = (vault_dir / JOURNAL).read_bytes()
    assert journal.startswith(vault_journal.MAGIC)
    # Two small records, not a copy of the database.
    assert len(journal) < len(image) // 4
    assert oct((vault_dir / JOURNAL).stat().st_mode & 0o777) == "0o600"
    v.close()
    # Compacted on close: the image has the changes and the journal is gone.
    assert not (vault_dir / JOURNAL).exists()
    assert (vault_dir / DB_FILE).read_bytes() != image
    v = unlock(vault_dir, PASSPHRASE)
    assert v.notice is None
    shown = triage.show_item(v, items[0])
    assert shown.status == "triaged"
    assert [n.text for n in shown.notes] == ["called back"]
    v.close()


def test_what_was_saved_survives_a_crash_and_nothing_else(
        items: list[str], vault_dir: Path) -> None:
    v = session(vault_dir)
    triage.set_fields(v, items[0], severity="S1", assign="rania")
    triage.add_note(v, items[1], "الجهاز صودر على الحدود")
    replies.add_reply(v, items[1], "نحن هنا")
    v.save()
    saved = dump(v)
    triage.set_fields(v, items[2], status="closed")  # never saved
    abandon(v)

    v = unlock(vault_dir, PASSPHRASE)
    assert v.notice is not None
    assert "1 saved change(s) were recovered" in v.notice
    assert dump(v) == saved
    assert triage.show_item(v, items[2]).status == "new"
    assert [h.id for h in triage.run_search(v, "الحدود")] == [items[1]]
    # Recovery compacted at once: the next session starts from a fresh image.
    assert not (vault_dir / JOURNAL).exists()
    v.close()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(
    st.sampled_from(["status", "severity", "tag", "untag", "note", "reply", "assign", "save"]),
    st.integers(0, 2), st.text(min_size=1, max_size=30).filter(str.strip)), max_size=25))
def test_replaying_the_journal_gives_the_database_as_last_saved(
        items: list[str], vault_dir: Path, ops: list[tuple[str, int, str]]) -> None:
    v = session(vault_dir)
    saved = dump(v)
    for op, i, text in ops:
        item = items[i]
        if op == "status":
            triage.set_fields(v, item, status=("new", "triaged", "closed")[len(text) % 3])
        elif op == "severity":
            triage.set_fields(v, item, severity=f"S{len(text) % 4 + 1}")
        elif op == "tag":
            triage.set_fields(v, item, tags=[f"t{len(text)}"])
        elif op == "untag":
            triage.set_fields(v, item, untags=[f"t{len(text)}"])
        elif op == "assign":
            triage.set_fields(v, item, assign=f"a{len(text)}")
        elif op == "note":
            triage.add_note(v, item, text)
        elif op == "reply":
            replies.add_reply(v, item, text)
        else:
            v.save()
            saved = dump(v)
    abandon(v)
    v = unlock(vault_dir, PASSPHRASE)
    try:
        assert dump(v) == saved
    finally:
        v.close()


def _journal_after_two_saves(items: list[str], vault_dir: Path) -> tuple[bytes, dict[str, Any]]:
    v = session(vault_dir)
    triage.set_fields(v, items[0], status="triaged")
    v.save()
    first = dump(v)
    triage.set_fields(v, items[1], status="closed")
    v.save()
    data = (vault_dir / JOURNAL).read_bytes()
    abandon(v)
    return data, first


@pytest.mark.parametrize("cut", [1, 30, 64, 100])
def test_a_torn_last_record_is_discarded_and_said(items: list[str], vault_dir: Path,
                                                 cut: int) -> None:
    data, first = _journal_after_two_saves(items, vault_dir)
    (vault_dir / JOURNAL).write_bytes(data[:-cut])
    v = unlock(vault_dir, PASSPHRASE)
    assert v.notice is not None
    assert "discarded" in v.notice
    assert dump(v) == first
    v.close()


def test_an_altered_record_ends_the_journal(items: list[str], vault_dir: Path) -> None:
    data, first = _journal_after_two_saves(items, vault_dir)
    # Flip a byte inside the first record's ciphertext: it and the record after it go.
    damaged = bytearray(data)
    damaged[len(vault_journal.MAGIC) + 32 + 4 + 40] ^= 1
    (vault_dir / JOURNAL).write_bytes(bytes(damaged))
    v = unlock(vault_dir, PASSPHRASE)
    assert v.notice is not None
    assert "discarded" in v.notice
    assert triage.show_item(v, items[0]).status == "new"
    assert triage.show_item(v, items[1]).status == "new"
    v.close()


def test_records_cannot_be_reordered_or_moved_to_another_image(
        items: list[str], vault_dir: Path) -> None:
    data, first = _journal_after_two_saves(items, vault_dir)
    v = unlock(vault_dir, PASSPHRASE)  # compacts: a new image, the journal removed
    assert dump(v) != first
    v.close()
    # The old journal put back beside the new image names another base: dropped.
    (vault_dir / JOURNAL).write_bytes(data)
    v = unlock(vault_dir, PASSPHRASE)
    assert v.notice is None
    assert triage.show_item(v, items[1]).status == "closed"
    assert not (vault_dir / JOURNAL).exists()
    v.close()


def test_a_compaction_killed_before_the_journal_is_removed_loses_nothing(
        items: list[str], vault_dir: Path) -> None:
    v = session(vault_dir)
    triage.set_fields(v, items[0], status="triaged")
    v.save()
    journal = (vault_dir / JOURNAL).read_bytes()
    v.close()  # image rewritten, then the journal removed
    (vault_dir / JOURNAL).write_bytes(journal)  # as if killed between the two steps
    v = unlock(vault_dir, PASSPHRASE)
    assert v.notice is None
    assert triage.show_item(v, items[0]).status == "triaged"
    v.close()


def test_a_failed_command_is_undone_in_a_session(items: list[str], vault_dir: Path) -> None:
    v = session(vault_dir)
    triage.set_fields(v, items[0], status="triaged")
    v.save()
    triage.set_fields(v, items[1], status="closed")
    assert v.has_unsaved_changes
    v.discard_unsaved()
    assert not v.has_unsaved_changes
    assert triage.show_item(v, items[0]).status == "triaged"
    assert triage.show_item(v, items[1]).status == "new"
    v.close()


def test_close_never_makes_unsaved_changes_durable(items: list[str], vault_dir: Path) -> None:
    v = session(vault_dir)
    triage.set_fields(v, items[0], status="triaged")
    v.save()
    triage.set_fields(v, items[1], status="closed")
    v.close()
    v = unlock(vault_dir, PASSPHRASE)
    assert triage.show_item(v, items[0]).status == "triaged"
    assert triage.show_item(v, items[1]).status == "new"
    v.close()


def test_a_bulk_change_is_saved_whole(items: list[str], server: Server,
                                      vault_dir: Path) -> None:
    v = session(vault_dir)
    triage.set_fields(v, items[0], status="triaged")
    v.save()
    image = (vault_dir / DB_FILE).read_bytes()
    with v.bulk():
        # import_bundle saves: inside bulk() that rewrites the image, journal removed.
        import_bundle(v, server.bundle([server.item(report_doc())]), progress=False)
        assert not (vault_dir / JOURNAL).exists()
    assert (vault_dir / DB_FILE).read_bytes() != image
    # Journalling resumes after it.
    triage.set_fields(v, items[1], status="closed")
    v.save()
    assert (vault_dir / JOURNAL).exists()
    abandon(v)
    v = unlock(vault_dir, PASSPHRASE)
    assert len(triage.list_items(v, triage.Filters())) == 4
    assert triage.show_item(v, items[1]).status == "closed"
    v.close()


def test_no_plaintext_in_the_journal(items: list[str], vault_dir: Path) -> None:
    canary = "CANARY-journal-شاهد-7f3a"
    v = session(vault_dir)
    triage.add_note(v, items[0], canary)
    v.save()
    data = (vault_dir / JOURNAL).read_bytes()
    assert canary.encode() not in data
    assert canary.split("-")[2].encode() not in data
    abandon(v)
    v = unlock(vault_dir, PASSPHRASE)
    assert canary in [n.text for n in triage.show_item(v, items[0]).notes]
    v.close()




@pytest.mark.slow
def test_kill_9_in_a_session_keeps_every_confirmed_save(items: list[str],
                                                       vault_dir: Path) -> None:
    last = 0
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", NOTE_SAVER, str(vault_dir), PASSPHRASE,
                                 "journal", *items], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        confirmed = 0
        for _ in range(5 + attempt * 7):
            confirmed = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        v = unlock(vault_dir, PASSPHRASE)
        counter = int(v.meta("counter") or 0)
        # Every save the process confirmed is there, and each save came whole: the
        # counter and the notes were saved together.
        assert counter >= confirmed > last
        notes = v.conn.execute("SELECT count(*) FROM notes WHERE text LIKE 'note %'"
                               ).fetchone()[0]
        assert notes == counter
        last = counter
        v.close()
