"""docs/threat-model.md points at tests: each one it names must exist, and each
guarantee in its tables must name one (issue 18, "The threat model, pointing at tests")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "threat-model.md"
TESTS = ROOT / "tests"

_FILE = re.compile(r"`((?:tests/)?(?:[\w-]+/)*test_\w+\.py)(?:::(\w+))?`")
_FUNC = re.compile(r"`(test_\w+)`")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _test_files() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _defines(path: Path, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def {re.escape(name)}\b", path.read_text(
        encoding="utf-8"), re.M) is not None


def _named_files() -> list[tuple[str, str | None]]:
    return sorted(set(_FILE.findall(_text())), key=str)


def _named_functions() -> list[str]:
    return sorted({m for m in _FUNC.findall(_text()) if not m.endswith(".py")})


@pytest.mark.parametrize(("name", "function"), _named_files())
def test_every_test_file_named_exists(name: str, function: str | None) -> None:
    if name.startswith("tests/"):
        candidates = [ROOT / name] if (ROOT / name).is_file() else []
    else:
        candidates = [p for p in _test_files() if p.name == name.split("/")[-1]]
    assert candidates, f"docs/threat-model.md names {name}, which does not exist"
    if function:
        assert any(_defines(p, function) for p in candidates), f"{name}::{function} is gone"


@pytest.mark.parametrize("name", _named_functions())
def test_every_test_function_named_exists(name: str) -> None:
    assert any(_defines(p, name) for p in _test_files()), \
        f"docs/threat-model.md names the test {name}, which no test file defines"


def test_every_guarantee_names_its_test() -> None:
    """In each table whose last column is `test`, every row names a test file or says
    why it has none ("not tested: …")."""
    missing = []
    checked = 0
    header: list[str] = []
    for line in _text().splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            continue
        if set(line.replace("|", "").strip()) <= {"-", ":", " "}:
            continue  # the separator row
        if header[-1].lower() != "test":
            continue
        checked += 1
        last = cells[-1]
        if not (_FILE.search(last) or _FUNC.search(last) or last.lower().startswith(
                "not tested")):
            missing.append(cells[0][:80])
    assert checked > 20, "the tables were not found: this checked nothing"
    assert not missing, f"guarantees without a test: {missing}"


def test_the_checks_see_the_document() -> None:
    # The patterns above must find something, or every test here would pass on nothing.
    assert len(_named_files()) > 20
    assert len(_named_functions()) > 10
