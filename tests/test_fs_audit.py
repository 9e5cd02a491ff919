"""Only keys/fs.py creates, replaces, moves or removes files (STYLE.md, principle 8).

keys/fs.py is the one audited set of file operations every package builds on: 0600
files and 0700 directories whatever the umask, no writes through symlinks, atomic
replacement, durable renames, names that cannot climb out of their directory. This
audit walks the syntax tree of every module of keys/, intake_server/ and
journalist_client/ (so a docstring that mentions a call does not count, and
``from os import remove`` or ``import os as o`` does) and fails on any raw file-system
mutation outside keys/fs.py and the commented allow-list below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keys", "intake_server", "journalist_client")
HELPER = "keys/fs.py"

BANNED = {
    "os": {
        "open", "mkdir", "makedirs", "replace", "rename", "renames", "link", "symlink",
        "unlink", "remove", "rmdir", "removedirs", "chmod", "truncate", "mkfifo", "mknod",
        "utime",
    },
    "shutil": {"copy", "copy2", "copyfile", "copytree", "move", "rmtree"},
    "tempfile": {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile",
                 "TemporaryDirectory", "SpooledTemporaryFile"},
}  # fmt: skip
# Path (or any object's) methods that change the file system. Path.replace is left out:
# it cannot be told from str.replace by syntax (os.replace is caught above).
PATH_MUTATORS = {
    "write_text", "write_bytes", "mkdir", "touch", "unlink", "rmdir", "rename",
    "symlink_to", "hardlink_to", "chmod", "lchmod",
}  # fmt: skip

# os.open is a mutation when its flags can write or create; flags the audit cannot read
# (a variable) count as writing.
OS_OPEN_WRITES = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}

# (file, what) -> (how many, why). Exact counts: a new raw call fails the audit, and so
# does a stale entry, so the list can only shrink by being edited.
ALLOWED: dict[tuple[str, str], tuple[int, str]] = {
    ("keys/cli.py", "os.open"): (
        2,
        "opens /dev/tty to ask for a passphrase, and /dev/null to silence stdout after "
        "a broken pipe: devices, never files",
    ),
    ("keys/cli.py", "tempfile.TemporaryDirectory"): (
        1,
        "`intake-keys demo`: a private (0700) directory for throw-away keys, removed "
        "when the demo ends",
    ),
    ("journalist_client/draft.py", "tempfile.mkdtemp"): (
        1,
        "the reply draft's private directory in /dev/shm (RAM), made 0700 with "
        "fs.private_dir: the triager's editor writes the draft and its side files there",
    ),
    ("journalist_client/draft.py", "os.open"): (
        1,
        "overwrites each file the editor left in the RAM directory with zeros (O_NOFOLLOW) "
        "before removing it",
    ),
    ("journalist_client/draft.py", ".unlink()"): (
        1,
        "removes what the editor left in the RAM directory (in /dev/shm, where fsync of a "
        "directory means nothing)",
    ),
    ("journalist_client/draft.py", ".rmdir()"): (
        1,
        "removes the RAM directory and any directory the editor made in it",
    ),
}


def _write_mode(call: ast.Call, position: int, *, computed_writes: bool) -> bool:
    """Whether an open() call may write: its mode is not a constant read-only mode."""
    mode: ast.expr | None = call.args[position] if len(call.args) > position else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if mode is None:
        return False
    if not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)):
        return computed_writes
    return bool(set(mode.value) & set("wax+"))


def _os_open_writes(call: ast.Call) -> bool:
    flags = call.args[1] if len(call.args) > 1 else None
    for kw in call.keywords:
        if kw.arg == "flags":
            flags = kw.value
    if flags is None:
        return True
    for node in ast.walk(flags):
        name = node.attr if isinstance(node, ast.Attribute) else None
        if isinstance(node, ast.Name) and node.id not in ("os",):
            name = node.id
            if not name.startswith("O_"):
                return True  # a variable: cannot be checked
        if name in OS_OPEN_WRITES:
            return True
    return False


def fs_violations(source: str) -> list[tuple[int, str]]:
    """(line, what) for each raw file-system mutation in ``source``."""
    tree = ast.parse(source)
    aliases = {name: name for name in BANNED}  # local name -> module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in BANNED:
                    aliases[a.asname or a.name] = a.name
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in BANNED and node.level == 0:
            for a in node.names:
                if a.name in BANNED[node.module]:
                    found.append((node.lineno, f"from {node.module} import {a.name}"))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            # The builtin: a mode the audit cannot read counts as writing.
            if _write_mode(node, 1, computed_writes=True):
                found.append((node.lineno, "open(..., write mode)"))
        elif isinstance(func, ast.Attribute):
            owner = aliases.get(func.value.id) if isinstance(func.value, ast.Name) else None
            if owner is not None:
                if func.attr in BANNED[owner] and not (
                    (owner, func.attr) == ("os", "open") and not _os_open_writes(node)
                ):
                    found.append((node.lineno, f"{owner}.{func.attr}"))
            elif func.attr in PATH_MUTATORS:
                found.append((node.lineno, f".{func.attr}()"))
            elif func.attr == "open" and _write_mode(
                node, 0, computed_writes=len(node.args) == 1 or not node.args
            ):
                # Path.open(mode): a mode the audit cannot read counts as writing when it
                # is the only argument; an AEAD's open(nonce, data) is not a file.
                found.append((node.lineno, ".open(write mode)"))
    return sorted(found)


@pytest.mark.parametrize("package", PACKAGES)
def test_file_system_changes_go_through_keys_fs(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    problems: list[str] = []
    counts: dict[tuple[str, str], int] = {}
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel == HELPER:
            continue
        for line, what in fs_violations(path.read_text(encoding="utf-8")):
            key = (rel, what)
            counts[key] = counts.get(key, 0) + 1
            if key not in ALLOWED:
                problems.append(f"{rel}:{line}: {what}")
    for (rel, what), (allowed, _why) in ALLOWED.items():
        if rel.startswith(f"{package}/") and counts.get((rel, what), 0) != allowed:
            problems.append(
                f"{rel}: {counts.get((rel, what), 0)} x {what}, the allow-list says {allowed}"
            )
    assert not problems, f"use keys.fs in {package}/ instead of:\n" + "\n".join(problems)


def test_the_audit_catches_what_it_should() -> None:
    sample = (
        "import os, shutil\n"  # 1
        "import os as o\n"  # 2
        "from os import remove\n"  # 3
        "open(p, 'wb')\n"  # 4
        "open(p, mode='a')\n"  # 5
        "open(p, m)\n"  # 6
        "open(p)\n"  # 7  reading: fine
        "open(p, 'rb')\n"  # 8  reading: fine
        "o.replace(a, b)\n"  # 9
        "shutil.rmtree(d)\n"  # 10
        "path.write_bytes(b'')\n"  # 11
        "path.open('w')\n"  # 12
        "path.open(mode)\n"  # 13 a mode the audit cannot read
        "Path(d).mkdir(parents=True)\n"  # 14
        "name.replace('a', 'b')\n"  # 15 str.replace: fine
        "import tempfile\ntempfile.mkdtemp()\n"  # 16, 17
        '"""os.unlink(p) in a docstring"""\n'  # 18 not code: fine
    )
    assert [line for line, _ in fs_violations(sample)] == [3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 17]
    opens = (
        "import os\n"
        "os.open(p, os.O_RDONLY | os.O_NOFOLLOW)\n"  # 2 reading: fine
        "os.open('/dev/tty', os.O_RDWR)\n"  # 3
        "os.open(p, flags)\n"  # 4 unreadable flags
        "os.open(p, O_CREAT | O_EXCL)\n"  # 5
        "aead.open(nonce, chunk)\n"  # 6 not a file: fine
        "path.open()\n"  # 7 reading: fine
    )
    assert fs_violations(opens) == [(3, "os.open"), (4, "os.open"), (5, "os.open")]
