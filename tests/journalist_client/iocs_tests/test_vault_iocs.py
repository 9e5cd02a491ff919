"""Indicators in the vault, through journalist-client: `iocs import/list/remove/rescan`,
matching at `import`, `list --matched`, `show --json`, and the severity decision.

Reports are built as the server writes them and carried in real signed bundles (the
`server` fixture of tests/journalist_client/conftest.py); every indicator placed in
them comes from the shared files in tests/data/iocs/.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import secrets
import select
import stat
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from journalist_client import indicators
from journalist_client.iocs import Indicator, IndicatorFile, Kind
from journalist_client.vault import SCHEMA_VERSION, VaultError, unlock
from support.iocs import DATA, SHARED_FILES, bundle, defang, mvt_zip, sample, shared_bundle

Run = Callable[..., tuple[int, str, str]]
NETWORK = {Kind.DOMAIN, Kind.IPV4, Kind.URL, Kind.EMAIL}


def _ok(run: Run, *args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, err
    return out


def _json(run: Run, *args: str) -> Any:
    return json.loads(_ok(run, *args, "--json"))


def _meta(data: bytes, name: str, sha256: str | None = None) -> dict[str, Any]:
    # The SHA-256 is the one the server records; a test may set it to an indicator's.
    return {"file_id": secrets.token_hex(16), "name": name, "media_type": "application/zip",
            "size": len(data), "sha256": sha256 or hashlib.sha256(data).hexdigest()}


def _import_reports(run: Run, server: Any, items: list[tuple[dict[str, Any], list[bytes]]]
                    ) -> list[str]:
    built = [server.item(doc, attachments) for doc, attachments in items]
    _ok(run, "import", str(server.bundle(built)))
    return [it.id for it in built]


def test_import_list_replace_and_remove(run: Run, tmp_path: Path) -> None:
    out = _ok(run, "iocs", "import", *(str(DATA / name) for name in SHARED_FILES))
    listing = _json(run, "iocs", "list")
    expected = {name: shared_bundle(name) for name in SHARED_FILES}
    assert [f["name"] for f in listing["files"]] == SHARED_FILES
    for f in listing["files"]:
        parsed = expected[f["name"]]
        assert f["indicators"] == len(parsed.indicators) > 0
        assert f["unsupported"] == len(parsed.unsupported)
        assert f["sha256"] == hashlib.sha256((DATA / f["name"]).read_bytes()).hexdigest()
        assert {c["family"]: c["indicators"] for c in f["families"]} == parsed.families()
        assert f"{f['name']}: {f['indicators']} indicator(s)" in out
    assert sum(c["indicators"] for c in listing["families"]) == sum(
        len(p.indicators) for p in expected.values())

    # The same content again: a no-op that says so.
    again = _ok(run, "iocs", "import", str(DATA / "rcs.stix2"))
    assert "already imported with this content; nothing changed" in again

    # A newer file of the same name replaces the older one's indicators, and unsupported
    # patterns are counted and listed, not dropped.
    newer = tmp_path / "rcs.stix2"
    newer.write_bytes(bundle(["[domain-name:value = 'rcs-new.example']",
                              "[domain-name:value = 'a.example' OR ipv4-addr:value = '1.2.3.4']",
                              "[file:size > 10]"], family="RCS 2026"))
    replaced = _ok(run, "iocs", "import", str(newer))
    assert "1 indicator(s), 2 unsupported pattern(s)" in replaced
    assert "replaces sha256 7d390e0c298704" in replaced
    listing = _json(run, "iocs", "list", "--unsupported")
    (rcs,) = [f for f in listing["files"] if f["name"] == "rcs.stix2"]
    assert rcs["families"] == [{"family": "RCS 2026", "indicators": 1, "unsupported": 2}]
    assert "RCSLab" not in {c["family"] for c in listing["families"]}
    assert sorted(u["pattern"] for u in listing["unsupported"]) == [
        "[domain-name:value = 'a.example' OR ipv4-addr:value = '1.2.3.4']",
        "[file:size > 10]"]
    text = _ok(run, "iocs", "list", "--unsupported")
    assert "Unsupported patterns (kept, not matched)" in text
    assert "RCS 2026: 1 indicator(s), 2 unsupported" in text

    removed = _ok(run, "iocs", "remove", "rcs.stix2")
    assert "Removed rcs.stix2: 1 indicator(s)" in removed
    assert "rcs.stix2" not in [f["name"] for f in _json(run, "iocs", "list")["files"]]
    code, _, err = run("iocs", "remove", "rcs.stix2")
    assert code == 1
    assert "no indicator file named 'rcs.stix2'" in err


def test_a_file_that_changes_while_it_is_read_imports_nothing(
        run: Run, vault_dir: Path, passfile: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A file of a stored name is hashed first, then parsed while its bytes are hashed
    # again (on the hashing thread): another program writing to it in between is seen.
    _ok(run, "iocs", "import", str(DATA / "rcs.stix2"))
    path = tmp_path / "rcs.stix2"
    first = bundle(["[domain-name:value = 'one.example']"], "F")
    path.write_bytes(first)
    parse = indicators.load_stream

    def rewritten_meanwhile(stream: Any, name: str) -> Any:
        with path.open("r+b") as f:  # in place: the importer's open file sees it
            f.write(first.replace(b"one.example", b"two.example"))
        return parse(stream, name)

    monkeypatch.setattr(indicators, "load_stream", rewritten_meanwhile)
    v = unlock(vault_dir, passfile.read_text().splitlines()[0])
    try:
        with pytest.raises(indicators.IndicatorError,
                           match="rcs.stix2: the file changed while it was read"):
            indicators.import_file(v, path, progress=False)
        (row,) = v.conn.execute("SELECT sha256 FROM ioc_files WHERE name = 'rcs.stix2'")
        assert row[0] == hashlib.sha256((DATA / "rcs.stix2").read_bytes()).hexdigest()
        assert {i.source_file for i in indicators._indicators(v.conn)} == {"rcs.stix2"}
        assert "two.example" not in {i.value for i in indicators._indicators(v.conn)}
    finally:
        v.close()


def test_a_bundle_that_is_not_stix_imports_nothing(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.stix2"
    bad.write_bytes(b'{"type": "bundle", "objects": [], "objects": []}')
    code, out, err = run("iocs", "import", str(bad), str(tmp_path / "missing.stix2"),
                         str(DATA / "cellebrite.stix2"))
    assert code == 1
    assert "bad.stix2: duplicate key in a JSON object. Nothing was imported." in err
    assert "missing.stix2: No such file or directory" in err
    assert "2 indicator file(s) not imported" in err
    # The good file given with it is imported, and saved.
    assert "cellebrite.stix2: 1 indicator(s)" in out
    assert [f["name"] for f in _json(run, "iocs", "list")["files"]] == ["cellebrite.stix2"]


def _text_report(report: Callable[..., dict[str, Any]], indicators: list[Indicator]
                 ) -> dict[str, Any]:
    """Network indicators plain in the description and links, defanged in the messages."""
    plain = [i.value for i in indicators]
    defanged = [d for d in map(defang, indicators) if d]
    doc = report(description="وصلتني رسالة فيها رابط: " + " ، ".join(plain))
    doc["answers"]["indicators"] = {"links": "\n".join(plain), "senders": "",
                                    "messages": "Voici le lien : " + " ; ".join(defanged)}
    return doc


@pytest.mark.parametrize("name", SHARED_FILES)
def test_every_files_indicators_are_found_at_import(run: Run, server: Any, name: str,
                                                    report: Callable[..., dict[str, Any]]
                                                    ) -> None:
    _ok(run, "iocs", "import", *(str(DATA / n) for n in SHARED_FILES))
    parsed: IndicatorFile = shared_bundle(name)
    picked = sample(list(parsed.indicators), per_kind=4)
    network = [i for i in picked if i.kind in NETWORK]
    device = [i for i in picked if i.kind not in NETWORK]
    items: list[tuple[dict[str, Any], list[bytes]]] = []
    if network:
        items.append((_text_report(report, network), []))
    if device:
        doc = report(description="I ran MVT on my phone, results attached")
        data = mvt_zip(device, "v3")
        sha = next((i.value for i in device if i.kind is Kind.SHA256), None)
        doc["attachments"] = [_meta(data, "mvt-results.zip", sha)]
        items.append((doc, [data]))
    # Look-alikes of the same indicators: never matched. ("not" is put before registrable
    # domains only: "notcdn.cdncounter.net" is rightly a subdomain of cdncounter.net.)
    hosts = [i.value for i in picked if i.kind is Kind.DOMAIN][:8]
    lookalike = report(description=" ".join(
        [f"not{h}" for h in hosts if h.count(".") == 1]
        + [f"https://{h}.evil.net/x" for h in hosts]) or "nothing here")
    items.append((lookalike, []))
    ids = _import_reports(run, server, items)

    matched = {r["id"] for r in _json(run, "list", "--matched")}
    assert matched == set(ids[:-1])
    found: dict[tuple[str, str], set[str]] = {}
    for item_id in ids[:-1]:
        shown = _json(run, "show", item_id)
        for m in shown["matches"]:
            assert m["source_file"] in SHARED_FILES
            found.setdefault((m["kind"], m["value"]), set()).add(
                f"{m['field']}:{m['device_output']}")
            if m["source_file"] == name:
                assert m["family"] in parsed.families()
    for i in network:
        where = found.get((i.kind.value, i.value), set())
        assert {"description:False", "links:False"} <= where, i
        if defang(i):
            assert "messages:False" in where, i
    for i in device:
        where = found.get((i.kind.value, i.value), set())
        assert "attachment:True" in where or "attachment sha256:False" in where, i
    listed = {r["id"]: r["matches"] for r in _json(run, "list")}
    assert listed[ids[-1]] == 0
    assert all(listed[i] > 0 for i in ids[:-1])


def test_rescan_finds_what_new_indicators_name(run: Run, server: Any, tmp_path: Path,
                                                report: Callable[..., dict[str, Any]]) -> None:
    pegasus = shared_bundle("pegasus.stix2")
    domain = next(i for i in pegasus.indicators if i.kind is Kind.DOMAIN)
    (item_id,) = _import_reports(run, server, [(report(description=f"hxxps://{domain.value}"
                                                      .replace(".", "[.]")), [])])
    assert _json(run, "list", "--matched") == []
    _ok(run, "iocs", "import", str(DATA / "pegasus.stix2"))
    assert _json(run, "list", "--matched") == []  # until the rescan
    code, out, err = run("iocs", "rescan")
    assert code == 0, err
    assert "Rescanned 1 item(s); 1 with matches" in out
    assert "rescanning" not in err  # no progress bar when stderr is not a terminal
    (row,) = _json(run, "list", "--matched")
    assert row["id"] == item_id
    assert row["matches"] == 1
    (m,) = _json(run, "show", item_id)["matches"]
    assert (m["family"], m["value"], m["field"]) == ("Pegasus", domain.value, "description")
    assert f"{row['id'][:12]}  " in _ok(run, "list", "--matched")

    # A newer file of the same name without that domain: its old matches go with it.
    newer = tmp_path / "pegasus.stix2"
    newer.write_bytes(bundle(["[domain-name:value = 'other.example']"], family="Pegasus"))
    _ok(run, "iocs", "import", str(newer))
    assert _json(run, "list", "--matched") == []
    assert _json(run, "show", item_id)["suggestion"] is None
    _ok(run, "iocs", "import", str(DATA / "pegasus.stix2"))
    _ok(run, "iocs", "rescan")
    assert [r["id"] for r in _json(run, "list", "--matched")] == [item_id]

    # Removing the file removes its matches and the suggestion they made.
    _ok(run, "iocs", "remove", "pegasus.stix2")
    assert _json(run, "list", "--matched") == []
    assert _json(run, "show", item_id)["suggestion"] is None


def _mvt_report(run: Run, server: Any, report: Callable[..., dict[str, Any]]
                ) -> tuple[str, Indicator]:
    _ok(run, "iocs", "import", str(DATA / "pegasus.stix2"))
    pegasus = shared_bundle("pegasus.stix2")
    process = next(i for i in pegasus.indicators if i.kind is Kind.PROCESS)
    domain = next(i for i in pegasus.indicators if i.kind is Kind.DOMAIN)
    data = mvt_zip([process], "v3", claim=domain)
    doc = report(description="MVT output attached")
    doc["attachments"] = [_meta(data, "mvt.zip")]
    (item_id,) = _import_reports(run, server, [(doc, [data])])
    return item_id, process


def test_show_lists_matches_and_the_reporters_claims_apart(
        run: Run, server: Any, report: Callable[..., dict[str, Any]]) -> None:
    item_id, process = _mvt_report(run, server, report)
    shown = _json(run, "show", item_id)
    ours = [m for m in shown["matches"] if m["value"] == process.value]
    assert ours
    m = ours[0]
    assert (m["kind"], m["family"], m["source_file"], m["stix_key"]) == (
        "process", "Pegasus", "pegasus.stix2", "process:name")
    assert (m["field"], m["attachment"], m["device_output"]) == ("attachment", "mvt.zip", True)
    assert m["path"] == ["mvt-results/datausage.json", "/0/proc_name"]
    # The reporter's run claimed the domain; their claim is kept apart, never as a match.
    assert shown["claims"]
    assert {c["mvt_format"] for c in shown["claims"]} == {"v3"}
    assert all(c["level"] == "CRITICAL" for c in shown["claims"])
    assert shown["suggestion"]["level"] == "S2"
    assert shown["suggestion"]["confidence"] == "strong-device"
    text = _ok(run, "show", item_id)
    assert "Spyware indicators (published indicators found by this client)" in text
    assert f"Pegasus: process {process.value}" in text
    assert ("found in attachment › mvt.zip › mvt-results/datausage.json › /0/proc_name "
            "(device output") in text
    assert "The reporter's own MVT detections (their run and indicators, not re-checked)" in text
    assert "suggested severity: S2 High (strong-device)" in text


def test_the_triager_confirms_or_overrides_the_suggestion(
        run: Run, server: Any, report: Callable[..., dict[str, Any]]) -> None:
    item_id, _ = _mvt_report(run, server, report)
    code, _, err = run("set", item_id, "--severity", "S4", "--confirm-suggestion")
    assert code == 1
    assert "the suggestion is S2, not S4" in err
    out = _ok(run, "set", item_id, "--severity", "S3")
    assert "overrode the suggestion S2 with S3" in out
    assert _json(run, "show", item_id)["suggestion"]["decision"] == "overridden"
    out = _ok(run, "set", item_id, "--confirm-suggestion")
    assert "severity: S3 → S2" in out
    assert "severity suggestion S2: confirmed" in out
    history = [(h["field"], h["old"], h["new"]) for h in _json(run, "history", item_id)]
    assert history[-4:] == [
        ("severity", "", "S3"),
        ("severity suggestion", "S2", "overrode the suggestion S2 with S3"),
        ("severity", "S3", "S2"),
        ("severity suggestion", "S2", "confirmed"),
    ]
    assert _json(run, "show", item_id)["suggestion"]["decision"] == "confirmed"
    assert _json(run, "show", item_id)["severity"] == "S2"

    (plain,) = _import_reports(run, server, [(report(description="nothing known"), [])])
    code, _, err = run("set", plain, "--confirm-suggestion")
    assert code == 1
    assert "no suggested severity to confirm" in err
    assert "severity suggestion" not in _ok(run, "set", plain, "--severity", "S4")


def test_a_vault_from_before_indicators_is_migrated(vault_dir: Path, passfile: Path,
                                                    run: Run) -> None:
    passphrase = passfile.read_text().splitlines()[0]
    v = unlock(vault_dir, passphrase)
    # What a vault saved by the client before issue 15 holds: no indicator tables (nor
    # the continuity tables of the migration after them).
    for table in ("ioc_files", "ioc_columns", "ioc_unsupported", "ioc_matches",
                  "ioc_claims", "ioc_scans", "expected", "losses"):
        v.conn.execute(f"DROP TABLE {table}")
    v.conn.execute("PRAGMA user_version = 0")
    v.save()
    v.close()
    _ok(run, "iocs", "import", str(DATA / "cellebrite.stix2"))
    assert [f["name"] for f in _json(run, "iocs", "list")["files"]] == ["cellebrite.stix2"]
    v = unlock(vault_dir, passphrase)
    assert v.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # A vault written by a newer client is refused, not half-understood.
    v.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    v.save()
    v.close()
    with pytest.raises(VaultError, match="newer than this journalist-client knows"):
        unlock(vault_dir, passphrase)


def test_indicators_stored_as_rows_are_migrated_to_columns(
        vault_dir: Path, passfile: Path, run: Run, tmp_path: Path) -> None:
    # A vault of schema version 2 kept a row per indicator (ioc_indicators). Migration 3
    # turns each file's rows into one text of columns, files and indicators in order.
    passphrase = passfile.read_text().splitlines()[0]
    referenced = tmp_path / "referenced.stix2"
    referenced.write_bytes(bundle(
        ["[domain-name:value = 'a.example']", f"[file:hashes.md5 = '{'0' * 32}']"],
        "Ref", references=[{"source_name": "lab", "url": "https://lab.example/r"}]))
    names = ["pegasus.stix2", "referenced.stix2", "rcs.stix2"]
    for name in names:
        _ok(run, "iocs", "import", str(referenced if name == referenced.name else DATA / name))
    v = unlock(vault_dir, passphrase)
    before = list(indicators._indicators(v.conn))
    assert {i.source_file for i in before} == set(names)
    assert any(i.references for i in before)  # the refs column is converted too
    v.conn.executescript("""
        CREATE TABLE ioc_indicators (file TEXT NOT NULL, kind TEXT NOT NULL,
            value TEXT NOT NULL, family TEXT NOT NULL, indicator_id TEXT NOT NULL,
            stix_key TEXT NOT NULL, refs TEXT NOT NULL);
        DROP TABLE ioc_columns;
        PRAGMA user_version = 2;
    """)
    v.conn.executemany(
        "INSERT INTO ioc_indicators VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(i.source_file, i.kind.value, i.value, i.family, i.indicator_id, i.stix_key,
          json.dumps(i.references) if i.references else "") for i in before])
    v.save()
    v.close()
    v = unlock(vault_dir, passphrase)
    try:
        assert v.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {n for (n,) in v.conn.execute("SELECT name FROM sqlite_master")}
        assert "ioc_indicators" not in tables
        assert list(indicators._indicators(v.conn)) == before
    finally:
        v.close()
    assert [f["name"] for f in _json(run, "iocs", "list")["files"]] == sorted(names)


def test_damaged_stored_indicators_are_refused_by_name(vault_dir: Path, passfile: Path,
                                                       run: Run) -> None:
    _ok(run, "iocs", "import", str(DATA / "cellebrite.stix2"))
    v = unlock(vault_dir, passfile.read_text().splitlines()[0])
    try:
        columns = json.loads(v.conn.execute("SELECT columns FROM ioc_columns").fetchone()[0])
        columns["kind"] = [["domain", 2]]  # two kinds for one value
        v.conn.execute("UPDATE ioc_columns SET columns = ?", (json.dumps(columns),))
        with pytest.raises(indicators.IndicatorError,
                           match="indicators of 'cellebrite.stix2' are damaged .*'kind' "
                                 "covers 2 indicators, not 1.*import the file again"):
            list(indicators._indicators(v.conn))
    finally:
        v.close()


def test_sightings_give_indicators_and_days_only(run: Run, server: Any, vault_dir: Path,
                                                passfile: Path,
                                                report: Callable[..., dict[str, Any]]) -> None:
    _ok(run, "iocs", "import", str(DATA / "pegasus.stix2"))
    domains = [i for i in shared_bundle("pegasus.stix2").indicators if i.kind is Kind.DOMAIN]
    first = report(description=f"{domains[0].value} and {domains[1].value}")
    first["received_day"] = "2026-11-02"
    second = report(description=f"again hxxps://{domains[0].value.replace('.', '[.]')}/x")
    second["received_day"] = "2026-11-20"
    late = report(description=domains[2].value)
    late["received_day"] = "2026-12-01"
    _import_reports(run, server, [(first, []), (second, []), (late, [])])
    v = unlock(vault_dir, passfile.read_text().splitlines()[0])
    try:
        seen = indicators.sightings(v, since=date(2026, 11, 1), until=date(2026, 11, 30))
    finally:
        v.close()
    assert [(i.value, count, a, b) for i, count, a, b in seen] == sorted(
        [(domains[0].value, 2, date(2026, 11, 2), date(2026, 11, 20)),
         (domains[1].value, 1, date(2026, 11, 2), date(2026, 11, 2))],
        key=lambda row: next(d.indicator_id for d in domains if d.value == row[0]))
    assert all(i.family == "Pegasus" and i.source_file == "pegasus.stix2" for i, *_ in seen)


def test_rescan_draws_a_progress_bar_on_a_terminal_only(
        run: Run, server: Any, vault_dir: Path, passfile: Path,
        report: Callable[..., dict[str, Any]]) -> None:
    _import_reports(run, server, [(report(), [])])
    command = [str(Path(sys.executable).parent / "journalist-client"), "--vault",
               str(vault_dir), "--passphrase-file", str(passfile), "iocs", "rescan"]
    # stderr is a pseudo-terminal: the bar is drawn there.
    main_fd, terminal_fd = pty.openpty()
    # A terminal of 80 columns: tqdm draws nothing on one of width 0 (a bare pty's).
    fcntl.ioctl(terminal_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    drawn = b""
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal_fd)
        os.close(terminal_fd)
        # Read while it runs: once the last writer closes, Linux drops what was unread.
        while True:
            if select.select([main_fd], [], [], 0.2)[0]:
                try:
                    drawn += os.read(main_fd, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    break
            elif process.poll() is not None:
                break
        process.communicate(timeout=60)
    finally:
        os.close(main_fd)
    assert process.returncode == 0
    assert b"rescanning" in drawn
    # stderr is a pipe: no bar.
    piped = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert piped.returncode == 0
    assert b"Rescanned 1 item(s)" in piped.stdout
    assert b"rescanning" not in piped.stderr


def test_mvt_output_sent_in_a_follow_up_counts_for_its_report(
        run: Run, server: Any, report: Callable[..., dict[str, Any]]) -> None:
    _ok(run, "iocs", "import", str(DATA / "pegasus.stix2"))
    process = next(i for i in shared_bundle("pegasus.stix2").indicators
                   if i.kind is Kind.PROCESS)
    first = report(description="my phone behaves strangely")
    data = mvt_zip([process], "v2")
    followup = report()
    del followup["answers"]
    followup.update(schema="amana.followup", message="here is the MVT output",
                    reply_recipient=first["reply_recipient"],
                    attachments=[_meta(data, "mvt.zip")])
    report_item = server.item(first)
    followup_item = server.item(followup, [data], type="followup")
    _ok(run, "import", str(server.bundle([report_item, followup_item])))
    (row,) = _json(run, "list", "--matched")
    assert (row["id"], row["matches"]) == (report_item.id, 1)
    assert {r["id"] for r in _json(run, "list", "--matched", "--followups")} == {
        report_item.id, followup_item.id}
    shown = _json(run, "show", report_item.id)
    assert shown["matches"] == []
    assert [t["matches"] for t in shown["thread"]] == [1]
    # The case's suggestion: device evidence in the follow-up suggests S2 for the report.
    assert shown["suggestion"]["level"] == "S2"
    assert f"1 spyware indicator match(es): `show {followup_item.id[:12]}`" in _ok(
        run, "show", report_item.id)
    (m,) = _json(run, "show", followup_item.id)["matches"]
    assert (m["value"], m["family"], m["device_output"]) == (process.value, "Pegasus", True)


def test_iocs_export_writes_shareable_stix_and_misp(run: Run, server: Any, tmp_path: Path,
                                                    report: Callable[..., dict[str, Any]]
                                                    ) -> None:
    from pymisp import MISPEvent
    from stix2validator import ValidationOptions, validate_instance

    _ok(run, "iocs", "import", str(DATA / "pegasus.stix2"))
    domain = next(i for i in shared_bundle("pegasus.stix2").indicators
                  if i.kind is Kind.DOMAIN)
    canary = "CANARY-source-lives-at-12-rue-X"
    doc = report(description=f"{canary} link {domain.value}")
    doc["received_day"] = "2026-11-02"
    _import_reports(run, server, [(doc, [])])
    stix_out, misp_out = tmp_path / "seen.stix2.json", tmp_path / "seen.misp.json"
    said = _ok(run, "iocs", "export", "--since", "2026-11-01", "--until", "2026-11-30",
               "--out", str(stix_out))
    assert "Wrote 1 indicator(s)" in said
    _ok(run, "iocs", "export", "--since", "2026-11-01", "--until", "2026-11-30",
        "--format", "misp", "--out", str(misp_out))
    for out in (stix_out, misp_out):
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        text = out.read_text(encoding="utf-8")
        assert canary not in text
        assert doc["submission_id"] not in text
    bundle = json.loads(stix_out.read_text(encoding="utf-8"))
    assert validate_instance(bundle, ValidationOptions(version="2.1", strict=True)).is_valid
    # A sighting of the published indicator, by its id: the value is already public.
    [sighting] = [o for o in bundle["objects"] if o["type"] == "sighting"]
    assert sighting["sighting_of_ref"] == domain.indicator_id
    assert sighting["count"] == 1
    event = MISPEvent()
    event.load(json.loads(misp_out.read_text(encoding="utf-8")))
    assert [a.value for a in event.attributes] == [domain.value]
    # Never replaces a file, and refuses a window that ends before it starts.
    code, _, err = run("iocs", "export", "--since", "2026-11-01", "--out", str(stix_out))
    assert code == 1
    assert "exists" in err
    code, _, err = run("iocs", "export", "--since", "2026-12-01", "--until", "2026-11-01",
                       "--out", str(tmp_path / "x"))
    assert code == 1
    assert "before --since" in err


def test_a_triager_marks_a_candidate_and_export_shares_it(
        run: Run, server: Any, tmp_path: Path, report: Callable[..., dict[str, Any]]) -> None:
    from stix2validator import ValidationOptions, validate_instance

    _ok(run, "iocs", "import", str(DATA / "pegasus.stix2"))
    canary = "CANARY-source-lives-at-12-rue-X"
    doc = report(description=f"{canary}: they sent hxxps://login-verify[.]example/a?u=1")
    doc["received_day"] = "2026-11-02"
    other = report(description="the same link again")
    other["received_day"] = "2026-11-09"
    first, second = _import_reports(run, server, [(doc, []), (other, [])])

    said = _ok(run, "iocs", "mark", first[:8], "hxxps://login-verify[.]example/a?u=1",
               "--type", "url", "--family", "Predator")
    assert "Marked url https://login-verify.example/a?u=1 (Predator)" in said
    _ok(run, "iocs", "mark", second[:8], "login-verify[.]example", "--type", "domain",
        "--family", "Predator")
    _ok(run, "iocs", "mark", second[:8], "https://login-verify.example/a?u=1", "--type", "url",
        "--family", "Predator")

    # Listed in show, counted as the report's, kept by a rescan, in the history.
    shown = _json(run, "show", first)
    (m,) = shown["matches"]
    assert (m["kind"], m["value"], m["family"], m["how"]) == (
        "url", "https://login-verify.example/a?u=1", "Predator", "marked")
    assert "candidate marked by the desk" in _ok(run, "show", first)
    _ok(run, "iocs", "rescan", "--no-progress")
    assert len(_json(run, "show", first)["matches"]) == 1
    assert {r["id"] for r in _json(run, "list", "--matched")} == {first, second}
    history = _ok(run, "show", first, "--history")
    assert "candidate indicator" in history
    assert "url https://login-verify.example/a?u=1 (Predator)" in history

    # Exported as new STIX indicators with their sightings: counts and days only.
    out = tmp_path / "seen.stix2.json"
    assert "Wrote 2 indicator(s)" in _ok(run, "iocs", "export", "--since", "2026-11-01",
                                         "--until", "2026-11-30", "--out", str(out))
    text = out.read_text(encoding="utf-8")
    assert canary not in text
    assert first not in text
    assert second not in text
    shared = json.loads(text)
    assert validate_instance(shared, ValidationOptions(version="2.1", strict=True)).is_valid
    patterns = {o["pattern"]: o["id"] for o in shared["objects"] if o["type"] == "indicator"}
    assert set(patterns) == {"[url:value = 'https://login-verify.example/a?u=1']",
                             "[domain-name:value = 'login-verify.example']"}
    counts = {s["sighting_of_ref"]: (s["count"], s["first_seen"], s["last_seen"])
              for s in shared["objects"] if s["type"] == "sighting"}
    assert counts[patterns["[url:value = 'https://login-verify.example/a?u=1']"]] == (
        2, "2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z")
    misp = tmp_path / "seen.misp.json"
    _ok(run, "iocs", "export", "--since", "2026-11-01", "--until", "2026-11-30",
        "--format", "misp", "--out", str(misp))
    event = json.loads(misp.read_text(encoding="utf-8"))["Event"]
    values = {a["value"] for a in event["Attribute"]}
    assert values == {"https://login-verify.example/a?u=1", "login-verify.example"}

    # Unmark withdraws it (and says so in the history); the second report's stay.
    assert "Unmarked url" in _ok(run, "iocs", "unmark", first[:8],
                                 "https://login-verify.example/a?u=1", "--type", "url")
    assert _json(run, "show", first)["matches"] == []
    assert len(_json(run, "show", second)["matches"]) == 2


@pytest.mark.parametrize(("args", "code", "message"), [
    (["VALUE", "--type", "domain"], 1, "an id is 6 to 32 lower-case hex characters"),
    (["not a domain", "--type", "domain"], 1, "is not a domain name"),
    (["evil.example/path", "--type", "domain"], 1, "for a link use --type url"),
    (["1.2.3.999", "--type", "ipv4"], 1, "is not an IPv4 address"),
    (["abc", "--type", "sha256"], 1, "a sha256 is 64 hexadecimal digits"),
    (["tmp/x", "--type", "file_path"], 1, "a file_path is absolute"),
    (["evil.example", "--type", "phone"], 2, "invalid choice"),
    (["evil.example"], 2, "--type"),
])
def test_mark_refuses_bad_input_in_one_line(run: Run, server: Any, args: list[str], code: int,
                                            message: str, capsys: pytest.CaptureFixture[str],
                                            report: Callable[..., dict[str, Any]]) -> None:
    (item,) = _import_reports(run, server, [(report(), [])])
    args = ["ZZZ", "evil.example", *args[1:]] if args[0] == "VALUE" else [item[:8], *args]
    try:
        got, _, err = run("iocs", "mark", *args)
    except SystemExit as exc:  # argparse: a usage error
        got, err = exc.code, capsys.readouterr().err
    assert got == code
    assert message in err
    assert len(err.strip().splitlines()) == 1 if code == 1 else err.startswith("usage:")


def test_mark_twice_and_unmark_unknown_are_refused(run: Run, server: Any,
                                                   report: Callable[..., dict[str, Any]]
                                                   ) -> None:
    (item,) = _import_reports(run, server, [(report(), [])])
    _ok(run, "iocs", "mark", item[:8], "EVIL.example.", "--type", "domain")
    code, _, err = run("iocs", "mark", item[:8], "evil.example", "--type", "domain")
    assert code == 1
    assert "domain evil.example is already marked on this item" in err
    code, _, err = run("iocs", "unmark", item[:8], "other.example", "--type", "domain")
    assert code == 1
    assert "is not marked on this item" in err
    (m,) = _json(run, "show", item)["matches"]
    assert m["family"] == "unattributed"
