"""Risky file operations only through keys.fs (or intake_server/_fs.py, which the storage
still uses until it moves to keys.fs); no client-identifying data read.

The checks walk each module's syntax tree (so docstrings that *mention* a banned
call do not count, and aliasing tricks like `from os import remove` do).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "intake_server"
SOURCES = sorted(PKG.rglob("*.py"))

OS_BANNED = {"remove", "unlink", "rmdir", "removedirs", "rename", "replace", "renames",
             "mkdir", "makedirs", "chmod", "utime", "truncate", "symlink", "link"}
SHUTIL_BANNED = {"rmtree", "move", "copy", "copy2", "copyfile", "copytree"}
# Path.replace is left out: it cannot be told from str.replace by syntax alone
# (os.replace is caught above).
PATH_MUTATORS = {"write_text", "write_bytes", "unlink", "rmdir", "mkdir", "rename",
                 "touch", "chmod", "symlink_to", "hardlink_to"}
IDENTIFYING_STRINGS = {"user-agent", "x-forwarded-for", "forwarded", "x-real-ip",
                       "peername", "accept-language"}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _write_mode(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and \
        any(c in mode.value for c in "wax+")


def fs_violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil"):
            names = {a.name for a in node.names} & (OS_BANNED | SHUTIL_BANNED)
            if names:
                found.append(f"from {node.module} import {names}")
        if isinstance(node, ast.Import) and any(a.name == "tempfile" for a in node.names):
            found.append("import tempfile")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open" and _write_mode(node):
            found.append(f"open(..., write mode) line {node.lineno}")
        if isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if owner == "os" and func.attr in OS_BANNED:
                found.append(f"os.{func.attr} line {node.lineno}")
            elif owner == "shutil" and func.attr in SHUTIL_BANNED:
                found.append(f"shutil.{func.attr} line {node.lineno}")
            elif func.attr in PATH_MUTATORS and owner not in ("os", "shutil"):
                found.append(f".{func.attr}() line {node.lineno}")
            elif func.attr == "open" and _write_mode(node):
                found.append(f".open(..., write mode) line {node.lineno}")
    return found


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "_fs.py"],
                         ids=lambda p: str(p.relative_to(PKG)))
def test_risky_file_operations_only_in_fs_helper(path) -> None:
    assert fs_violations(ast.parse(path.read_text())) == [], "use keys.fs"


def test_the_audit_catches_what_it_should() -> None:
    bad = ("import os, shutil\nfrom os import remove\nopen(p, 'wb')\nos.unlink(p)\n"
           "shutil.rmtree(d)\np.write_text('x')\nq.open(mode='a')\nimport tempfile\n")
    assert len(fs_violations(ast.parse(bad))) == 7


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_client_identifying_data_is_read(path) -> None:
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("remote", "peername", "transport", "forwarded", "host"), \
                f"{path.name}:{node.lineno}: request.{node.attr}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docs:
            assert node.value.lower() not in IDENTIFYING_STRINGS, \
                f"{path.name}:{node.lineno}: {node.value!r}"


def test_upload_body_is_only_read_with_multipart() -> None:
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "request":
                assert node.func.attr not in ("post", "read", "text", "json"), \
                    f"{path.name}:{node.lineno}: request.{node.func.attr}()"


def test_server_runs_loopback_only_without_access_log() -> None:
    # Both apps (source and staff) are served through AppRunner + TCPSite: every runner
    # without an access log, every site bound to 127.0.0.1, and nothing else serving.
    tree = ast.parse((PKG / "__main__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute)]
    assert not [c for c in calls if c.func.attr == "run_app"]
    runners = [c for c in calls if c.func.attr == "AppRunner"]
    sites = [c for c in calls if c.func.attr in ("TCPSite", "SockSite", "UnixSite")]
    assert len(runners) == 1
    assert len(sites) == 1
    kw = {k.arg: k.value for k in runners[0].keywords}
    assert isinstance(kw["access_log"], ast.Constant)
    assert kw["access_log"].value is None
    assert sites[0].func.attr == "TCPSite"
    host = sites[0].args[1]
    assert isinstance(host, ast.Constant)
    assert host.value == "127.0.0.1"