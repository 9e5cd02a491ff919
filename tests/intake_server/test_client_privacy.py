"""The server reads nothing that identifies a client, and serves on loopback only.

(Risky file operations are audited for every package at once in tests/test_fs_audit.py.)
The checks walk each module's syntax tree, so docstrings that *mention* a header do
not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "intake_server"
SOURCES = sorted(PKG.rglob("*.py"))

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


# Where a module may hold the connection's transport, and why. pace.py asks it only
# whether aiohttp has paused reading (is_reading), so that time a client could not send
# is not counted against its pace. A transport's address is read with get_extra_info,
# which no module may call (below), and "peername" is an identifying string.
TRANSPORT_ALLOWED = {"pace.py"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_client_identifying_data_is_read(path) -> None:
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    forbidden = {"remote", "peername", "transport", "forwarded", "host", "get_extra_info"}
    if path.name in TRANSPORT_ALLOWED:
        forbidden.discard("transport")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            assert node.attr not in forbidden, f"{path.name}:{node.lineno}: .{node.attr}"
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
    assert runners  # one per app's settings (the source app has its own timing)
    assert len(sites) == 1
    for runner in runners:
        kw = {k.arg: k.value for k in runner.keywords}
        assert isinstance(kw["access_log"], ast.Constant)
        assert kw["access_log"].value is None
    assert sites[0].func.attr == "TCPSite"
    host = sites[0].args[1]
    assert isinstance(host, ast.Constant)
    assert host.value == "127.0.0.1"