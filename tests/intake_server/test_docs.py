"""The docs say what the code does: settings, commands, the report format, the taxonomy."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from intake_server import report as rpt
from intake_server.__main__ import build_parser
from intake_server.config import SETTINGS, Config
from support.intake import cli_commands

ROOT = Path(__file__).resolve().parents[2]
SERVER_MD = (ROOT / "docs" / "server.md").read_text()
REPORT_MD = (ROOT / "docs" / "report-format.md").read_text()
TAXONOMY = (ROOT / "tests" / "data" / "taxonomy.md").read_text()


@pytest.mark.parametrize(("section", "name"),
                         [(s, n) for s, names in SETTINGS.items() for n in names])
def test_every_setting_is_documented_with_its_default(section, name) -> None:
    row = next((line for line in SERVER_MD.splitlines()
                if line.startswith(f"| `[{section}] {name}` |")), None)
    assert row, f"docs/server.md has no row for [{section}] {name}"
    default = {f.name: f.default for f in dataclasses.fields(Config)}[name]
    shown = row.split("|")[2]
    if isinstance(default, Path | str):
        assert f'"{default}"' in shown
    else:
        assert str(int(default) if float(default).is_integer() else default) in shown


@pytest.mark.parametrize("command", [name for name, _ in cli_commands(build_parser())])
def test_every_command_is_documented(command) -> None:
    assert f"### `intake-server {command} " in SERVER_MD


def _keys(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


def test_report_format_documents_every_field() -> None:
    doc = rpt.build_report(
        submission_id="0" * 32, day="2026-01-01", lang="en",
        answers={"category": "other"}, desks=["triage"], reply_recipient="age1x",
        attachments=[{"file_id": "1" * 32, "name": "a", "media_type": "text/plain",
                      "size": 1, "sha256": "0" * 64}])
    for key in set(_keys(doc)):
        assert f"`{key}`" in REPORT_MD, key
    assert f"`{rpt.SCHEMA}`" in REPORT_MD or f'`"{rpt.SCHEMA}"`' in REPORT_MD
    assert f"version {rpt.SCHEMA_VERSION}" in REPORT_MD


@pytest.mark.parametrize("choices", [rpt.CATEGORIES, rpt.TARGETS, rpt.PROFESSIONS,
                                     rpt.PLATFORMS, rpt.COUNTRY_EXTRA])
def test_report_format_lists_every_choice(choices) -> None:
    for code, *_ in choices:
        assert f"`{code}`" in REPORT_MD, code


def test_documented_text_bounds_match_the_code() -> None:
    assert "≤ 200 bytes" in REPORT_MD
    assert rpt.FIELDS["incident_date"].max_bytes == 200
    assert "≤ 1000 bytes" in REPORT_MD
    assert rpt.FIELDS["device_details"].max_bytes == 1000


# Where the form's wording differs from the taxonomy's bracketed prompt, and why.
REWORDED = {
    # The taxonomy gives two quoted alternatives; the form joins them.
    "acct": "I can't get into my account, or someone else is using my account",
    "advice": "I want help staying safe, or a check of my device with no symptoms",
    # The taxonomy gives no prompt for "other".
    "other": "Something else, or I'm not sure",
}


def test_categories_are_the_taxonomy_top_level() -> None:
    headings = re.findall(r"^### \d+\. `([a-z_]+)`: .*\n(?:\[\"(.*)\"\])?", TAXONOMY, re.M)
    assert len(headings) == 13
    assert [code for code, _ in headings] == [c[0] for c in rpt.CATEGORIES]
    for (code, prompt), (_, _, form_prompt) in zip(headings, rpt.CATEGORIES, strict=True):
        assert form_prompt == REWORDED.get(code, prompt), code
