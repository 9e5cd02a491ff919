"""--json: one JSON document per command, whose records are exactly what docs/client.md
("JSON output") documents, and what journalist_client/records.py declares.

The documented tables are parsed here and checked three ways: against the dataclasses,
against real output (every object's keys and every value's type), and against the
parser (every command with --json is named in the docs). None can drift alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from journalist_client import cli, records

from .conftest import HOSTILE, Run, attachment_meta, report_doc

DOCS = Path(__file__).resolve().parents[2] / "docs" / "client.md"
RECORDS = [name for name in records.__all__ if name[0].isupper()]


def _json_section() -> str:
    text = DOCS.read_text(encoding="utf-8")
    section = re.search(r"^## JSON output\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "docs/client.md has no JSON output section"
    return section.group(1)


def _documented() -> dict[str, dict[str, str]]:
    """{record: {field: type}} from the tables under each ``#### `Record``` heading."""
    tables: dict[str, dict[str, str]] = {}
    for name, body in re.findall(r"^#### `(\w+)`[^\n]*\n(.*?)(?=^#### |\Z)", _json_section(),
                                 re.S | re.M):
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", body, re.M)
        tables[name] = {field: kind.strip() for field, kind in rows}
    return tables


DOCUMENTED = _documented()


def test_the_tables_were_found() -> None:
    # A parser that finds nothing would make every check below pass.
    assert len(DOCUMENTED) == len(RECORDS) > 10
    assert DOCUMENTED["Attachment"]["size"] == "integer"


@pytest.mark.parametrize("name", RECORDS)
def test_each_record_is_documented_field_by_field(name: str) -> None:
    fields = [f.name for f in dataclasses.fields(getattr(records, name))]
    assert list(DOCUMENTED.get(name, {})) == fields


def _json_commands() -> list[str]:
    sub = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(name for name, sp in sub.choices.items()
                  if any("--json" in a.option_strings for a in sp._actions))


def test_every_command_with_json_is_named_in_the_docs() -> None:
    commands = _json_commands()
    assert commands == ["history", "list", "outbox", "quarantine", "search", "show", "stats"]
    intro = _json_section().split("####")[0]
    for command in commands:
        assert f"`{command}`" in intro


def _check(value: Any, kind: str, where: str) -> None:
    """``value`` has the documented ``kind`` (recursively for records and arrays)."""
    if kind.endswith(" or null"):
        if value is None:
            return
        kind = kind.removesuffix(" or null")
    if kind.startswith("array of "):
        assert isinstance(value, list), where
        for i, v in enumerate(value):
            _check(v, kind.removeprefix("array of "), f"{where}[{i}]")
        return
    record = re.fullmatch(r"`(\w+)`", kind)
    if record:
        fields = DOCUMENTED[record.group(1)]
        assert isinstance(value, dict), where
        assert list(value) == list(fields), where
        for field, field_kind in fields.items():
            _check(value[field], field_kind, f"{where}.{field}")
        return
    python = {"string": str, "integer": int, "boolean": bool}[kind]
    assert type(value) is python, f"{where}: {value!r} is not a {kind}"


def _json(run: Run, *args: str) -> Any:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    return json.loads(out)  # one document: json.loads refuses anything after it


def test_every_json_command_prints_documented_records(run: Run,
                                                      imported: dict[str, str]) -> None:
    a, f = imported["a"], imported["f"]
    assert run("note", a, "المصدر في الأردن")[0] == 0
    assert run("reply", a, stdin="We received your report.")[0] == 0
    assert run("refer", a, "--to", "lawyers", "--note", "needs counsel")[0] == 0
    listed = _json(run, "list", "--followups")
    _check(listed, "array of `ItemSummary`", "list")
    assert {r["id"] for r in listed} == {imported[k] for k in "abcf"}
    report = _json(run, "show", a[:8])
    _check(report, "`Report`", "show")
    assert report["id"] == a
    assert [t["kind"] for t in report["thread"]] == ["followup", "reply"]
    assert report["notes"][0]["text"] == "المصدر في الأردن"
    _check(_json(run, "show", f[:8]), "`FollowUp`", "show")
    history = _json(run, "history", a[:8])
    _check(history, "array of `HistoryEntry`", "history")
    assert {h["field"] for h in history} >= {"note", "status"}
    hits = _json(run, "search", "Pegasus")
    _check(hits, "array of `SearchHit`", "search")
    assert [h["id"] for h in hits] == [a]
    outbox = _json(run, "outbox")
    _check(outbox, "array of `OutboxEntry`", "outbox")
    assert sorted(e["type"] for e in outbox) == ["referral", "reply"]
    assert _json(run, "quarantine") == []


def test_quarantine_json(run: Run, imported: dict[str, str], server: Any) -> None:
    bad = server.item(b"{not json")
    assert run("import", str(server.bundle([bad])))[0] == 1  # all quarantined
    entries = _json(run, "quarantine", "--retry")
    _check(entries, "array of `QuarantineEntry`", "quarantine")
    assert [e["item_id"] for e in entries] == [bad.id]
    assert "JSON" in entries[0]["reason"]


def test_source_text_is_data_in_json_and_inert_in_text(run: Run,
                                                       imported: dict[str, str]) -> None:
    code, out, _ = run("show", imported["c"][:8], "--json")
    assert code == 0
    # ensure_ascii=False: Arabic and the rest stay readable UTF-8 ...
    report = json.loads(out)
    assert report["answers"]["description"] == HOSTILE
    assert report["attachments"][0]["name"] == HOSTILE
    # ... and what could act on a terminal is a JSON escape, never a raw character.
    for c in "\x1b\x07\r\x9b\u202e":
        assert c not in out
    assert "\\u202e" in out
    code, text, _ = run("show", imported["c"][:8])
    for c in "\x1b\x07\r\x9b\u202e":
        assert c not in text
    assert "\\x1b" in text
    arabic = run("show", imported["a"][:8], "--json")[1]
    assert "الإمارات" in arabic


def test_outbox_bundle_refuses_json(run: Run, imported: dict[str, str], tmp_path: Path) -> None:
    code, _, err = run("outbox", "bundle", "--out", str(tmp_path / "o.bundle"), "--json")
    assert code == 1
    assert "--json" in err


def test_indicator_records_match_the_docs(run: Run, server: Any, tmp_path: Path) -> None:
    # One indicator file with a domain, a process and a pattern set aside; one report
    # with the domain in its text and an MVT v3 zip with the process and a claim.
    patterns = ["[domain-name:value = 'spy-infra.example']", "[process:name = 'spyd']",
                "[file:size > 10]"]
    objects: list[dict[str, Any]] = [{"type": "malware", "id": "malware--1", "name": "Spy"}]
    for n, pattern in enumerate(patterns):
        objects += [{"type": "indicator", "id": f"indicator--{n}", "pattern": pattern,
                     "pattern_type": "stix"},
                    {"type": "relationship", "id": f"relationship--{n}",
                     "source_ref": f"indicator--{n}", "target_ref": "malware--1"}]
    stix = tmp_path / "spy.stix2"
    stix.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}))
    assert run("iocs", "import", str(stix))[0] == 0
    listing = _json(run, "iocs", "list", "--unsupported")
    _check(listing, "`IndicatorListing`", "iocs list")
    assert len(listing["unsupported"]) == 1

    claim = {"level": "HIGH", "module": "datausage", "message": "Found", "event": {},
             "matched_indicator": {"value": "spyd", "type": "processes", "name": "Spy",
                                   "stix2_file_name": "spy.stix2"}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("r/info.json", json.dumps({"mvt_version": "2026.7.29"}))
        archive.writestr("r/datausage.json", json.dumps([{"proc_name": "spyd"}]))
        archive.writestr("r/alerts.json", json.dumps([claim]))
    data = buffer.getvalue()
    doc = report_doc(description="open https://spy-infra.example/x")
    doc["attachments"] = [attachment_meta(data, name="mvt.zip")]
    item = server.item(doc, [data])
    assert run("import", str(server.bundle([item])))[0] == 0
    (row,) = _json(run, "list", "--matched")
    _check(row, "`ItemSummary`", "list")
    assert row["matches"] == 2
    report = _json(run, "show", item.id)
    _check(report, "`Report`", "show")
    assert {m["field"] for m in report["matches"]} == {"description", "attachment"}
    assert [c["indicator_value"] for c in report["claims"]] == ["spyd"]
    assert report["suggestion"]["level"] == "S2"
