"""docs/cli.md documents every `intake-keys` command, each with an example, and the exit
status of every command the project installs.

The command list is derived from the parser itself, never written out here: a command
added to keys/cli.py without a section in docs/cli.md fails this test.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

from keys.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cli.md"


def _leaves(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every runnable command: (its words, its parser), through nested subcommands."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _leaves(sub, f"{prefix}{name} ")
                found.extend(nested or [(f"{prefix}{name}", sub)])
    return found


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    return [name for name, _ in _leaves(parser)]


def test_every_command_dispatches_through_set_defaults() -> None:
    leaves = _leaves(_parser())
    assert len(leaves) >= 9
    missing = [name for name, sub in leaves if not callable(sub.get_default("func"))]
    assert missing == [], "no set_defaults(func=...) for these commands"


def test_the_exit_status_section_names_every_installed_command() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    section = DOC.read_text(encoding="utf-8").split("## Exit status", 1)[1].split("\n## ", 1)[0]
    assert "intake-keys" in scripts
    for script in scripts:
        assert f"`{script}`" in section, f"docs/cli.md, Exit status: {script} is not named"
    for status in ("**0**", "**1**", "**2**"):
        assert status in section


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
