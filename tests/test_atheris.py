"""Coverage-guided fuzzing of the parsers with atheris, bounded in runs and time
(issue 18, "Malformed input"); the harness is tests/support/atheris_targets.py.

atheris is in the test extras for Linux x86_64 only (it ships wheels there); elsewhere
these tests are skipped and say so, and tests/test_parser_fuzz.py still covers the
same contracts with Hypothesis. Per target: AMANA_ATHERIS_RUNS inputs (2,000) within
AMANA_ATHERIS_SECONDS (2); `make soak` gives each 200,000 runs and 60 seconds.
A crash leaves its input as ``crash-*`` in the test's directory, named in the failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).parent / "support" / "atheris_targets.py"
RUNS = int(os.environ.get("AMANA_ATHERIS_RUNS", "2000"))
SECONDS = int(os.environ.get("AMANA_ATHERIS_SECONDS", "2"))
TARGETS = ("age", "zip", "attachment", "stix", "pattern", "document")


# libFuzzer's -rss_limit_mb compares ru_maxrss, which Linux carries over exec (in the
# process's signal struct) from the process that spawned it: the harness would start at
# this pytest worker's peak. A small Python in between passes on its own peak instead;
# a process it spawns gets a new signal struct and only its (tens of MiB) memory peak.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _fuzz(target: str, cwd: Path, *extra: str, runs: int = RUNS, seconds: int = SECONDS,
          rss_limit_mb: int = 1024) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _LAUNCHER, sys.executable, str(HARNESS), target,
         f"-runs={runs}", f"-max_total_time={seconds}", f"-rss_limit_mb={rss_limit_mb}",
         "-timeout=20", *extra],
        cwd=cwd, capture_output=True, text=True, timeout=seconds + 120, check=False)


@pytest.mark.parametrize("target", TARGETS)
def test_atheris_finds_no_crash(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris installs on Linux x86_64 only")
    run = _fuzz(target, tmp_path, str(tmp_path / "corpus"))
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(
        ("crash-", "oom-", "timeout-")))
    assert run.returncode == 0, (crashes, run.stderr[-3000:])
    # It ran: libFuzzer's closing line counts the inputs it tried.
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert done, run.stderr[-2000:]
    assert int(done.group(1)) > 0


def test_the_harness_reports_an_undocumented_exception(tmp_path: Path) -> None:
    """The control: an input that makes a parser raise what it does not document is a
    crash, with a non-zero exit."""
    pytest.importorskip("atheris", reason="atheris installs on Linux x86_64 only")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(HARNESS.parent)!r})\n"
        "import atheris_targets as t\n"
        "def boom(data):\n"
        "    raise KeyError('undocumented')\n"
        "t.TARGETS['age'] = boom\n"
        "sys.argv[0] = 'probe'\n"
        "t.main()\n")
    run = subprocess.run([sys.executable, str(probe), "age", "-runs=10"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0
    assert "KeyError" in run.stdout + run.stderr
    assert [p for p in tmp_path.iterdir() if p.name.startswith("crash-")]


def test_the_memory_limit_is_the_fuzzers_own(tmp_path: Path) -> None:
    """libFuzzer reads its peak memory as ru_maxrss, which Linux carries over exec from
    the process that started it: after a pytest worker peaked above the limit once (an
    age test with rage's scrypt took 1 GiB), every fuzz run lasting past libFuzzer's
    first check at 1 s "ran out of memory" on whatever input it had (seen in CI). Here a
    parent peaks at 400 MiB, frees it, and fuzzes for 3 s under a 300 MiB limit."""
    pytest.importorskip("atheris", reason="atheris installs on Linux x86_64 only")
    parent = tmp_path / "parent.py"
    parent.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_atheris\n"
        "peak = b'\\x01' * (400 << 20)  # written, so resident\n"
        "del peak\n"
        "run = test_atheris._fuzz('pattern', test_atheris.Path(sys.argv[1]), sys.argv[2],\n"
        "                         runs=10**9, seconds=3, rss_limit_mb=300)\n"
        "sys.stdout.write(run.stderr[-1500:])\n"
        "sys.exit(run.returncode)\n")
    run = subprocess.run([sys.executable, str(parent), str(tmp_path), str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stdout + run.stderr[-1500:]
    assert "Done" in run.stdout, run.stdout
