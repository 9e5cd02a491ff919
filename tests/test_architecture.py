"""The dependency lines of DESIGN.md, held by reading every module's imports.

intake_server -> keys <- journalist_client. keys imports neither side, nor any network
or database library. Neither side imports the other: each parses what the other wrote
as untrusted input. Only the designated modules touch low-level crypto APIs.
"""

from __future__ import annotations

import ast
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
