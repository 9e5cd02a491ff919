"""bench/run_all.py (issue 18, "Benchmarks stay true"): the registry, the markers in
docs/benchmarks.md, and a real quick run rewriting only its blocks of a copy.

Nothing here is timed: the benchmarks' figures are never checked, only that a run
replaces exactly the text between a benchmark's markers and nothing else, that a failed
run leaves the file as it was, and that quick figures cannot reach the real file.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DOCS = ROOT / "docs" / "benchmarks.md"
# Scripts of bench/ that are not benchmarks themselves.
NOT_BENCHMARKS = {"run_all.py", "bench_result.py"}
MARKER = re.compile(r"^<!-- bench:([^:]+):(begin|end) -->$", re.M)


@pytest.fixture
def run_all(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # bench/ is the scripts' own directory: on sys.path when run, here for this test only.
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _without_blocks(text: str, names: list[str]) -> str:
    """``text`` with the inside of each named block emptied (the markers kept)."""
    for name in names:
        text = re.sub(rf"(?s)(<!-- bench:{name}:begin -->\n).*?(<!-- bench:{name}:end -->)",
                      r"\1\2", text)
    return text


def _inside(text: str, name: str) -> str:
    m = re.search(rf"(?s)<!-- bench:{name}:begin -->\n(.*?)<!-- bench:{name}:end -->", text)
    assert m, f"no block for {name}"
    return m.group(1)


def test_every_benchmark_is_registered_with_its_script_and_markers(run_all: ModuleType) -> None:
    names = [b.name for b in run_all.BENCHMARKS]
    assert len(names) == len(set(names)), "a benchmark is registered twice"
    scripts = {b.script for b in run_all.BENCHMARKS}
    on_disk = {p.name for p in BENCH.glob("*.py")} - NOT_BENCHMARKS
    assert on_disk - scripts == set(), "bench/ scripts missing from run_all.BENCHMARKS"
    docs = DOCS.read_text(encoding="utf-8")
    for bench in run_all.BENCHMARKS:
        assert re.fullmatch(r"[a-z0-9_]+", bench.name), bench.name
        source = BENCH / bench.script
        assert source.is_file(), f"{bench.name}: no {source}"
        assert "add_json_option(" in source.read_text(encoding="utf-8"), \
            f"{bench.script} has no --json option for run_all"
        run_all._block(docs, bench.name)  # exactly one pair, each marker on its own line
    markers = {m.group(1) for m in MARKER.finditer(docs)}
    assert markers == set(names), "docs/benchmarks.md has markers for unregistered names"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^bench:.*\n\t\$\(BIN\)/python bench/run_all\.py", makefile, re.M)


@pytest.mark.slow
def test_quick_run_rewrites_its_blocks_of_a_copy_and_nothing_else(
        tmp_path: Path, system_tool: Callable[[str], str]) -> None:
    system_tool("age")
    system_tool("age-keygen")
    copy = tmp_path / "benchmarks.md"
    shutil.copyfile(DOCS, copy)
    before = copy.read_bytes()
    done = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--docs", str(copy),
         "--only", "age_throughput", "iocs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/2] age_throughput: done in" in done.stdout
    assert "[2/2] iocs: done in" in done.stdout
    after = copy.read_bytes()
    assert DOCS.read_bytes() != after  # the copy changed, the real file is not the copy

    names = ["age_throughput", "iocs"]
    assert _without_blocks(after.decode(), names).encode() == \
        _without_blocks(before.decode(), names).encode()
    text = after.decode()
    age = _inside(text, "age_throughput")
    assert age != _inside(before.decode(), "age_throughput")
    assert "**Quick run (sizes too small for figures), " in age
    assert "`bench/age_throughput.py --mib 8`" in age
    assert "| implementation | encrypt MB/s | × age | decrypt MB/s | × age |" in age
    for implementation in ("`age` binary (reference)", "`keys.age` library", "`intake-keys` CLI"):
        assert f"\n| {implementation}" in age
    iocs = _inside(text, "iocs")
    assert "| what | result | goal |" in iocs
    assert "`mvt-ios check-iocs`" in iocs
    assert "Machine: " in iocs
    assert " cores" in iocs
    # Run again over the generated blocks: they are replaced, not stacked.
    again = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--docs", str(copy),
         "--only", "iocs"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    rerun = copy.read_text(encoding="utf-8")
    assert rerun.count("<!-- bench:iocs:begin -->") == 1
    assert _inside(rerun, "iocs").count("| what | result | goal |") == 1
    assert _inside(rerun, "age_throughput") == age


FAILS = """import sys
print("boom: the disk is full", file=sys.stderr)
sys.exit(3)
"""
# Exits 0 but writes a result whose cell would close the block's marker early.
HOSTILE = """import json, sys
path = sys.argv[sys.argv.index("--json") + 1]
json.dump({"format": "amana-bench-result", "version": 1, "benchmark": "vault",
           "setup": "s", "columns": ["a"], "rows": [["x --> y"]], "metrics": {},
           "context": {}}, open(path, "w"))
"""
# A real, valid result through bench_result, without the minutes of a real benchmark.
WORKS = """import sys
from pathlib import Path
sys.path.insert(0, BENCH)
from bench_result import Result
result = Result("ui", "three pages", ["page", "p95 | ms"], context={"SQLite": "3"})
result.row("inbox", "1.5")
result.write(Path(sys.argv[sys.argv.index("--json") + 1]))
"""


def _fakes(run_all: ModuleType, tmp_path: Path) -> list[object]:
    scripts = {"fails.py": FAILS, "hostile.py": HOSTILE,
               "works.py": WORKS.replace("BENCH", repr(str(BENCH)))}
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    return [run_all.Benchmark("age_throughput", str(tmp_path / "fails.py"), ()),
            run_all.Benchmark("vault", str(tmp_path / "hostile.py"), ()),
            run_all.Benchmark("ui", str(tmp_path / "works.py"), ())]


def test_failed_benchmarks_keep_their_blocks_and_the_run_fails(
        run_all: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "benchmarks.md"
    shutil.copyfile(DOCS, copy)
    before = copy.read_text(encoding="utf-8")
    code = run_all.main(["--docs", str(copy)], benchmarks=_fakes(run_all, tmp_path))
    out, err = capsys.readouterr()
    assert code == 1
    assert "age_throughput: FAILED" in err
    assert "exit status 3" in err
    assert "boom: the disk is full" in err  # the failing script's own words
    assert "vault: FAILED" in err
    assert "one line of text" in err
    assert "again with: bench/run_all.py --only age_throughput vault" in err
    after = copy.read_text(encoding="utf-8")
    # The one that worked is written; the failed ones and everything else are as they were.
    assert _without_blocks(after, ["ui"]) == _without_blocks(before, ["ui"])
    ui = _inside(after, "ui")
    assert "**Latest run, " in ui
    assert "| page | p95 \\| ms |" in ui
    assert "| inbox | 1.5 |" in ui
    assert "1 table rewritten (ui)" in out
    assert not list(tmp_path.glob(".benchmarks.md.*")), "a temporary file was left behind"


def test_quick_and_dry_runs_never_write_the_docs(
        run_all: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    real = DOCS.read_bytes()
    with pytest.raises(SystemExit) as refused:
        run_all.main(["--quick", "--docs", str(DOCS), "--only", "ui"],
                     benchmarks=_fakes(run_all, tmp_path))
    assert refused.value.code == 2
    assert "quick results never go into docs/benchmarks.md" in capsys.readouterr().err
    assert DOCS.read_bytes() == real

    # Pointed at a copy standing in for docs/benchmarks.md, a quick run prints its
    # table and leaves the file alone; so does a dry run, which shows the diff.
    copy = tmp_path / "benchmarks.md"
    shutil.copyfile(DOCS, copy)
    monkeypatch.setattr(run_all, "DOCS", copy)
    fakes = _fakes(run_all, tmp_path)
    assert run_all.main(["--quick", "--only", "ui"], benchmarks=fakes) == 0
    out = capsys.readouterr().out
    assert "| inbox | 1.5 |" in out
    assert "left as it was" in out
    assert run_all.main(["--dry-run", "--only", "ui"], benchmarks=fakes) == 0
    out = capsys.readouterr().out
    assert "\n+| inbox | 1.5 |\n" in out
    assert copy.read_bytes() == real


def test_a_missing_marker_stops_the_run_before_it_starts(
        run_all: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "benchmarks.md"
    copy.write_text(DOCS.read_text(encoding="utf-8").replace("<!-- bench:ui:end -->\n", ""))
    before = copy.read_bytes()
    assert run_all.main(["--docs", str(copy), "--only", "ui"],
                        benchmarks=_fakes(run_all, tmp_path)) == 2
    out, err = capsys.readouterr()
    assert "<!-- bench:ui:end -->" in err
    assert "[1/1]" not in out  # nothing ran
    assert copy.read_bytes() == before
