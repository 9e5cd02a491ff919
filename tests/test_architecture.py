"""The dependency lines of DESIGN.md, held by reading every module's imports.

intake_server -> keys <- journalist_client. keys imports neither side, nor any network
or database library. Neither side imports the other: each parses what the other wrote
as untrusted input. Only the designated modules touch low-level crypto APIs. Inside each
package the modules form no import cycle, not even one hidden in a function body.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keys", "intake_server", "journalist_client")

FORBIDDEN = {
    "keys": ("intake_server", "journalist_client", "aiohttp", "sqlite3", "sqlite_utils",
             "socket", "urllib", "http", "requests"),
    "intake_server": ("journalist_client",),
    "journalist_client": ("intake_server",),
}
# Low-level crypto stays behind recipes (STYLE.md principle 3).
HAZMAT_ALLOWED = {"keys/age/_primitives.py", "keys/signing.py"}
NACL_ALLOWED = {"keys/signing.py", "keys/codename.py", "keys/age/_primitives.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_dependency_direction(package: str) -> None:
    modules = _modules(package)
    if not modules:
        pytest.skip(f"{package}/ has no modules yet")
    offenders = []
    for path in modules:
        for name in _imports(path):
            root = name.split(".")[0]
            if root in FORBIDDEN[package]:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_low_level_crypto_stays_behind_recipes() -> None:
    offenders = []
    for package in PACKAGES:
        for path in _modules(package):
            rel = path.relative_to(ROOT).as_posix()
            for name in _imports(path):
                if name.startswith("cryptography.hazmat") and rel not in HAZMAT_ALLOWED:
                    offenders.append(f"{rel} imports {name}")
                if name.split(".")[0] == "nacl" and rel not in NACL_ALLOWED:
                    offenders.append(f"{rel} imports {name}")
                if name.split(".")[0] == "random":
                    offenders.append(f"{rel} imports random (use secrets)")
    assert not offenders, "\n".join(offenders)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # Guard against a checker that can never fail (for example a parser that finds nothing).
    bad = tmp_path / "bad.py"
    bad.write_text("import intake_server.app\nfrom cryptography.hazmat.primitives import hashes\n")
    assert _imports(bad) == {"intake_server.app", "cryptography.hazmat.primitives"}


# --- no import cycle inside a package ------------------------------------------------


@dataclass(frozen=True)
class _Edge:
    target: str
    where: str  # "path:line", and whether the import is hidden in a function body


def _module_name(path: Path, top: Path) -> str:
    parts = list(path.relative_to(top.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(top: Path) -> dict[str, list[_Edge]]:
    """Module -> the modules of the same package it imports, from every import statement.

    Function-local imports count: hiding a cycle in a function body is still a cycle
    (it only moves the failure from import time to the first call). ``from P import n``
    is an edge to the module P.n when there is one, else to P's ``__init__``; relative
    imports are resolved against the importing module's package. Importing P.n is not
    counted as importing P: that would make every package a cycle with its modules.
    """
    paths = {_module_name(p, top): p for p in sorted(top.rglob("*.py"))}
    graph: dict[str, list[_Edge]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        local: set[int] = set()
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                local.update(id(n) for n in ast.walk(fn) if n is not fn)
        edges: list[_Edge] = []
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    base = package[: len(package) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [
                    f"{module}.{a.name}" if f"{module}.{a.name}" in paths else module
                    for a in node.names
                ]
            where = f"{path.relative_to(top.parent)}:{getattr(node, 'lineno', 0)}"
            if id(node) in local:
                where += ", in a function"
            edges += [_Edge(t, where) for t in targets if t in paths and t != name]
        graph[name] = edges
    return graph


def import_cycles(top: Path) -> list[str]:
    """Each import cycle among the modules under ``top``, spelled out with the import
    statement of every step: "p.a -> p.b [p/a.py:3] -> p.a [p/b.py:9, in a function]"."""
    graph = _import_graph(top)
    cycles: list[str] = []
    seen: set[frozenset[str]] = set()

    def walk(start: str, node: str, trail: list[tuple[str, str]], on_trail: set[str]) -> None:
        for edge in graph[node]:
            if edge.target == start:
                members = frozenset(on_trail)
                if members not in seen:
                    seen.add(members)
                    steps = [*trail, (edge.target, edge.where)]
                    cycles.append(start + "".join(f" -> {t} [{w}]" for t, w in steps))
            elif edge.target not in on_trail and edge.target > start:
                # Each cycle is found once, from its smallest module name.
                walk(start, edge.target, [*trail, (edge.target, edge.where)],
                     on_trail | {edge.target})

    for module in sorted(graph):
        walk(module, module, [], {module})
    return cycles


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package: str) -> None:
    cycles = import_cycles(ROOT / package)
    assert not cycles, f"import cycles in {package}/:\n" + "\n".join(cycles)


def test_the_cycle_checker_finds_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "routes").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(
        "from .state import KEY\n"
        "def create_app():\n"
        "    from pkg.routes import source\n"  # the function-local import that hides it
        "    return source\n"
    )
    (pkg / "state.py").write_text("KEY = 1\n")
    (pkg / "routes" / "__init__.py").write_text("")
    (pkg / "routes" / "source.py").write_text("from .. import app\nfrom ..state import KEY\n")
    assert import_cycles(pkg) == [
        "pkg.app -> pkg.routes.source [pkg/app.py:3, in a function]"
        " -> pkg.app [pkg/routes/source.py:1]"
    ]
    # Without the back edge there is no cycle, and the checker says so.
    (pkg / "routes" / "source.py").write_text("from ..state import KEY\n")
    assert import_cycles(pkg) == []


def _imports_and_names(path: Path) -> set[str]:
    """_imports, plus ``module.name`` for every ``from module import name``."""
    names = _imports(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _offline_imports_of_online(package_dir: Path) -> list[str]:
    online = package_dir / "online"
    return sorted(f"{path.relative_to(package_dir.parent).as_posix()} imports {name}"
                  for path in package_dir.rglob("*.py") if online not in path.parents
                  for name in _imports_and_names(path)
                  if name.split(".")[:2] == ["journalist_client", "online"])


def test_the_offline_client_never_imports_the_online_one() -> None:
    # journalist_client/online/ (journalist-transfer) talks to the server; the rest of
    # journalist_client runs on the air-gapped machine and must never load it.
    assert (ROOT / "journalist_client" / "online").is_dir()
    assert _offline_imports_of_online(ROOT / "journalist_client") == []


def test_the_online_rule_sees_a_violation(tmp_path: Path) -> None:
    (tmp_path / "journalist_client" / "online").mkdir(parents=True)
    (tmp_path / "journalist_client" / "online" / "fetch.py").write_text("import aiohttp\n")
    (tmp_path / "journalist_client" / "cli.py").write_text(
        "from journalist_client.online.fetch import fetch\n")
    (tmp_path / "journalist_client" / "vault.py").write_text(
        "from journalist_client import online\n")
    assert _offline_imports_of_online(tmp_path / "journalist_client") == [
        "journalist_client/cli.py imports journalist_client.online.fetch",
        "journalist_client/cli.py imports journalist_client.online.fetch.fetch",
        "journalist_client/vault.py imports journalist_client.online"]
