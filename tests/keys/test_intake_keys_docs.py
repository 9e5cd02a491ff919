"""docs/cli.md documents every `intake-keys` command, each with an example."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from keys.cli import _parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix}{name} ")
                found.extend(nested or [f"{prefix}{name}"])
    return found


def test_every_command_has_a_section_and_an_example() -> None:
    text = DOC.read_text(encoding="utf-8")
    commands = _commands(_parser())
    assert "keyring check" in commands
    assert "demo" in commands
    for command in commands:
        heading = f"### `intake-keys {command}`"
        assert heading in text, f"docs/cli.md has no section for `intake-keys {command}`"
        section = text.split(heading, 1)[1].split("\n### ", 1)[0]
        assert re.search(rf"^\$ intake-keys {re.escape(command)}\b", section, re.M), (
            f"the `intake-keys {command}` section has no console example"
        )


def test_every_documented_command_exists() -> None:
    documented = re.findall(r"^### `intake-keys ([a-z -]+)`", DOC.read_text(), re.M)
    assert sorted(documented) == sorted(_commands(_parser()))


def test_every_failure_class_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for kind in ("armor failure", "header failure", "no match", "HMAC failure", "payload failure"):
        assert f"`{kind}: …`" in text
