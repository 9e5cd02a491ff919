"""The README's walk-through as a script: its ```sh walkthrough blocks, read from the
Markdown by a CommonMark parser (markdown-it-py), never retyped in a test.

Used by tests/integration/test_readme_path.py, which runs the blocks against a real
demo server, and which checks with `commands` that every step of the path is there.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from markdown_it import MarkdownIt

README = Path(__file__).resolve().parents[2] / "README.md"
# The fenced info string that marks a block as part of the walk-through.
INFO = "sh walkthrough"
# Printed between blocks so that the output of each block can be told apart.
MARK = "@@amana-walkthrough-block"

PROGRAMS = ("journalist-client", "journalist-transfer", "intake-server")
# Options of the programs themselves (before the command) that take a value.
GLOBAL_OPTIONS = {"--vault", "--passphrase-file", "--as"}
# Commands that have commands of their own: "desk add-transfer-key", "outbox bundle".
GROUPS = {"desk", "outbox", "iocs", "quarantine"}

# The path the issue asks for (issue 14): each (program, command) must be run.
REQUIRED = (
    ("journalist-transfer", "init"),
    ("intake-server", "desk add-transfer-key"),
    ("journalist-transfer", "fetch"),
    ("journalist-client", "init"),
    ("journalist-client", "import"),
    ("journalist-client", "list"),
    ("journalist-client", "show"),
    ("journalist-client", "set"),
    ("journalist-client", "note"),
    ("journalist-client", "search"),
    ("journalist-client", "export-attachment"),
    ("journalist-client", "reply"),
    ("journalist-client", "refer"),
    ("journalist-client", "outbox bundle"),
    ("journalist-transfer", "push"),
)
# ...with both demo desks: the second one imports the first one's referral.
REQUIRED_TEXT = ("--import-keys demo/desks/triage", "--import-keys demo/desks/forensics",
                 "refer \"$ID\" --to forensics")


def blocks(markdown: str) -> list[str]:
    """The walk-through blocks of a Markdown text, in order."""
    return [token.content for token in MarkdownIt("commonmark").parse(markdown)
            if token.type == "fence" and token.info.strip() == INFO]


def script(parts: list[str]) -> str:
    """One bash script of the blocks, stopping at the first failure, with MARK and
    the block's number printed (on stdout and stderr) before each block."""
    lines = ["set -euo pipefail"]
    for number, block in enumerate(parts, 1):
        lines.append(f"echo '{MARK} {number}'; echo '{MARK} {number}' >&2")
        lines.append(block)
    return "\n".join(lines) + "\n"


def split_output(output: str) -> dict[int, str]:
    """What each block printed, by block number, from the output of `script`."""
    found: dict[int, str] = {}
    pieces = re.split(rf"^{re.escape(MARK)} (\d+)\n", output, flags=re.MULTILINE)
    for number, text in zip(pieces[1::2], pieces[2::2], strict=True):
        found[int(number)] = text
    return found


def commands(text: str) -> list[tuple[str, str]]:
    """Every (program, command) the shell text runs: "journalist-client list",
    "intake-server desk add-transfer-key", ... Continuation lines are joined, and a
    program is found in each part of a pipeline and inside `$( )`."""
    lines = re.sub(r"\\\n", " ", text).splitlines()
    # A command substitution is a command of its own; what is left is a word.
    inner = re.compile(r"\$\(([^()]*)\)")
    for i, line in enumerate(lines):
        while match := inner.search(line):
            lines.append(match.group(1))
            line = line[:match.start()] + "SUBSTITUTED" + line[match.end():]
        lines[i] = line
    found = []
    for line in lines:
        for part in line.split("|"):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:  # an unbalanced quote split by the `|`: not a command
                continue
            for i, word in enumerate(words):
                program = word.rsplit("/", 1)[-1]
                if program in PROGRAMS:
                    found.append((program, _command(words[i + 1:])))
    return found


def _command(args: list[str]) -> str:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1 if "=" in args[i] or args[i] not in GLOBAL_OPTIONS else 2
    if i >= len(args):
        return ""
    if args[i] in GROUPS and i + 1 < len(args) and not args[i + 1].startswith("-"):
        return f"{args[i]} {args[i + 1]}"
    return args[i]


def missing(text: str) -> list[str]:
    """The required steps the shell text does not run, as "program command"."""
    ran = set(commands(text))
    joined = re.sub(r"\\\n\s*", " ", text)
    return ([f"{program} {command}" for program, command in REQUIRED
             if (program, command) not in ran]
            + [words for words in REQUIRED_TEXT if words not in joined])
