"""Only keys/fs.py creates, replaces or removes files in keys/ (STYLE.md, principle 8).

Everything else goes through its audited helpers (atomic, fsynced, 0600/0700, no
clobbering). A line that must do otherwise says why with a ``# safe-fs: reason`` comment.
"""

from __future__ import annotations

import ast
from pathlib import Path

KEYS = Path(__file__).resolve().parents[2] / "keys"
HELPER = KEYS / "fs.py"

BANNED_MODULE_CALLS = {
    "os": {
        "open", "mkdir", "makedirs", "replace", "rename", "renames", "link", "symlink",
        "unlink", "remove", "rmdir", "removedirs", "chmod", "truncate", "mkfifo", "mknod",
    },
    "shutil": {"copy", "copy2", "copyfile", "copytree", "move", "rmtree", "copyfileobj"},
    "tempfile": {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "TemporaryDirectory"},
}  # fmt: skip
BANNED_METHODS = {"write_bytes", "write_text", "mkdir", "touch", "unlink", "rmdir", "symlink_to"}


def _open_mode(call: ast.Call) -> str | None:
    mode: ast.expr | None = call.args[1] if len(call.args) > 1 else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if mode is None:
        return "r"
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else None


def _violations(path: Path, root: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        what = None
        if isinstance(func, ast.Name) and func.id == "open":
            mode = _open_mode(node)
            if mode is None or set(mode) & set("wax+"):
                what = f"open(..., {mode!r})"
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if owner in BANNED_MODULE_CALLS and func.attr in BANNED_MODULE_CALLS[owner]:
                what = f"{owner}.{func.attr}"
            elif owner not in BANNED_MODULE_CALLS and func.attr in BANNED_METHODS:
                what = f".{func.attr}()"
        if what and "# safe-fs:" not in lines[node.lineno - 1]:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {what}")
    return found


def test_only_the_helper_touches_the_file_system() -> None:
    files = [p for p in KEYS.rglob("*.py") if p != HELPER]
    assert len(files) > 10
    problems = [v for p in files for v in _violations(p, KEYS.parent)]
    assert not problems, "use keys.fs instead of:\n" + "\n".join(problems)


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, shutil\n"
        "open(p, 'wb')\n"
        "open(p, mode='a')\n"
        "open(p, m)\n"
        "open(p)\n"
        "open(p, 'rb')\n"
        "os.replace(a, b)\n"
        "shutil.rmtree(d)\n"
        "path.write_bytes(b'')\n"
        "os.open('/dev/tty', os.O_RDWR)  # safe-fs: a terminal, not a file\n"
    )
    lines = [v.split(":")[1] for v in _violations(sample, tmp_path)]
    assert lines == ["2", "3", "4", "7", "8", "9"]
