"""docs/client.md documents every command of both programs with an example (the list of
commands comes from the parsers themselves); docs/search.md documents every rule."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from journalist_client import cli
from journalist_client.online import cli as online_cli

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _commands() -> dict[str, argparse.ArgumentParser]:
    """``program command`` for every sub-command of journalist-client and journalist-transfer."""
    found = {}
    for parser in (cli.parser(), online_cli.parser()):
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        found.update({f"{parser.prog} {name}": sp for name, sp in sub.choices.items()})
    return found


def test_both_programs_are_there() -> None:
    assert {"journalist-client list", "journalist-transfer fetch"} <= set(_commands())


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_is_documented_with_an_example(command: str) -> None:
    text = (DOCS / "client.md").read_text(encoding="utf-8")
    section = re.search(rf"^### `{re.escape(command)}`\n(.*?)(?=^### |^## |\Z)",
                        text, re.S | re.M)
    assert section, f"docs/client.md has no section for {command}"
    program = command.split()[0]
    assert command in section.group(1) or f"{program} --vault" in section.group(1)
    assert "```console" in section.group(1)


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_has_help_with_an_example(command: str) -> None:
    sp = _commands()[command]
    assert sp.epilog
    assert sp.epilog.startswith(f"Example:\n  {command.split()[0]} ")


@pytest.mark.parametrize("option", ["--status", "--severity", "--category", "--country",
                                    "--desk", "--since", "--until", "--tag", "--indicator"])
def test_list_filters_are_documented(option: str) -> None:
    assert option in (DOCS / "client.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("rule", ["alef", "maqsura", "marbuta", "tatweel", "tashkeel",
                                  "digits", "hamza", "article", "accents", "whole words"])
def test_search_rules_are_documented(rule: str) -> None:
    assert rule in (DOCS / "search.md").read_text(encoding="utf-8").lower()
