"""Run every benchmark and rewrite its table in docs/benchmarks.md, with the date and machine.

Each benchmark in BENCHMARKS runs in its own process with ``--json PATH`` (see
bench/bench_result.py); its table replaces what stands between its markers in
docs/benchmarks.md,

    <!-- bench:NAME:begin -->
    ...
    <!-- bench:NAME:end -->

and nothing outside them changes. The file is rewritten once, at the end, through a
temporary file and a rename; a benchmark that fails keeps its old block, the others
get their new one, and the exit status is 1.

    make bench                                   # every benchmark, full size
    .venv/bin/python bench/run_all.py --only upload vault
    .venv/bin/python bench/run_all.py --dry-run  # run, show the diff, write nothing
    .venv/bin/python bench/run_all.py --quick    # small sizes, about a minute; prints
                                                 # the tables, never rewrites the docs

``--quick`` results are not figures (sizes too small to mean anything): they never go
into docs/benchmarks.md. ``--quick --docs COPY`` writes them into another file (the
tests do, on a copy).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench_result import Result, ResultError, machine

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOCS = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Benchmark:
    name: str  # the marker's name: bench:NAME:begin
    script: str  # in bench/
    quick: tuple[str, ...]  # arguments for --quick: small sizes, a few seconds
    full: tuple[str, ...] = ()  # arguments for the real run (none: the script's defaults)
    disk: bool = False  # writes and fsyncs files: the block names the temp file system


# The registry: one line per benchmark, run in this order. To add one: give bench/NAME.py
# a --json option (bench_result.add_json_option, then Result(...).write), add its line
# here, and put its two markers in its section of docs/benchmarks.md.
BENCHMARKS: list[Benchmark] = [
    Benchmark("age_throughput", "age_throughput.py", ("--mib", "8"), disk=True),
    Benchmark("upload", "upload.py",
              ("--size-mib", "16", "--rounds", "1", "--reports", "4", "--concurrency", "2"),
              disk=True),
    Benchmark("vault", "vault.py", ("--import", "200", "--total", "1000", "--queries", "2"),
              disk=True),
    Benchmark("iocs", "iocs.py", ("--indicators", "20000", "--reports", "60")),
    Benchmark("shell", "shell.py", ("--reports", "100", "--rounds", "3",
                                    "--reference-runs", "1"), disk=True),
    Benchmark("ui", "ui.py", ("--reports", "200", "--runs", "10"), disk=True),
    Benchmark("rotation", "rotation.py", ("--reports", "50", "--rounds", "1"), disk=True),
    Benchmark("memory", "memory.py", ("--submissions", "20", "--logins", "20",
                                      "--settle", "2")),
]

_NAME = re.compile(r"[a-z0-9_]+")
GENERATED_NOTE = ("<!-- Written by bench/run_all.py (make bench): "
                  "edit outside these markers, not inside. -->")


class DocsError(Exception):
    """docs/benchmarks.md lacks a marker, or has one twice."""


def begin_marker(name: str) -> str:
    return f"<!-- bench:{name}:begin -->"


def end_marker(name: str) -> str:
    return f"<!-- bench:{name}:end -->"


def _block(text: str, name: str) -> tuple[int, int]:
    """Where the inside of NAME's block starts and ends in ``text`` (each marker on a line
    of its own, once)."""
    begin, end = begin_marker(name) + "\n", "\n" + end_marker(name)
    if text.count(begin_marker(name)) != 1 or text.count(end_marker(name)) != 1:
        raise DocsError(f"{name}: wants exactly one {begin_marker(name)} and one "
                        f"{end_marker(name)}, each on a line of its own")
    start = text.find(begin)
    stop = text.find(end)
    if start < 0 or stop < 0 or stop < start + len(begin) - 1:
        raise DocsError(f"{name}: the markers are not on lines of their own, in order")
    if start and text[start - 1] != "\n":
        raise DocsError(f"{name}: {begin_marker(name)} does not start its line")
    after = stop + len(end)
    if after < len(text) and text[after] != "\n":
        raise DocsError(f"{name}: {end_marker(name)} does not end its line")
    return start + len(begin), stop + 1


def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the inside of each named block replaced; every other byte kept."""
    for name, inside in blocks.items():
        start, stop = _block(text, name)
        text = text[:start] + inside + text[stop:]
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def render(bench: Benchmark, result: Result, args: Sequence[str], *, quick: bool,
           when: datetime, took: float, load: float, machine_line: str) -> str:
    """The inside of a block: a paragraph saying what ran where and when, then the table."""
    command = (f"`{' '.join(['bench/' + bench.script, *args])}`" if args
               else f"`bench/{bench.script}` with its defaults")
    head = ("**Quick run (sizes too small for figures), " if quick else "**Latest run, ")
    context = "; ".join(f"{k} {v}" for k, v in result.context.items())
    lines = [
        GENERATED_NOTE,
        f"{head}{when:%Y-%m-%d}** ({command}, {_duration(took)}): {result.setup}.",
        f"Machine: {machine_line}; load average {load:.2f} when it started"
        + (f". {context}." if context else "."),
        "",
        "| " + " | ".join(_cell(c) for c in result.columns) + " |",
        "|" + "---|" * len(result.columns),
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in result.rows),
    ]
    return "\n".join(lines) + "\n"


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def run_one(bench: Benchmark, args: Sequence[str], work: Path, *, verbose: bool,
            timeout: float) -> Result:
    """Run one benchmark in its own process; its checked result, or RuntimeError."""
    out, log = work / f"{bench.name}.json", work / f"{bench.name}.log"
    argv = [sys.executable, str(BENCH / bench.script), *args, "--json", str(out)]
    with log.open("wb") as sink:
        target = None if verbose else sink
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=target, stderr=target,
                                stdin=subprocess.DEVNULL)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # As Ctrl-C would: the script's own clean-up (a server it started) runs.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise RuntimeError(f"stopped after {_duration(timeout)} (--timeout)\n"
                               f"{_tail(log)}") from None
        except KeyboardInterrupt:
            # The terminal sent the child its own SIGINT: let it clean up, then go.
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    if code != 0:
        raise RuntimeError(f"exit status {code}\n{_tail(log)}")
    try:
        result = Result.read(out)
    except ResultError as e:
        raise RuntimeError(str(e)) from e
    if result.benchmark != bench.name:
        raise RuntimeError(f"its result is named {result.benchmark!r}, not {bench.name!r}")
    return result


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by a complete new file, or leave it as it was.

    Not keys.fs.atomic_write_text: that one makes 0600 files for secrets, and this is a
    tracked document that keeps its mode."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_project_docs(path: Path) -> bool:
    try:
        return path.resolve() == DOCS.resolve() or path.samefile(DOCS)
    except OSError:
        return False


def main(argv: Sequence[str] | None = None, benchmarks: Sequence[Benchmark] = BENCHMARKS) -> int:
    by_name = {b.name: b for b in benchmarks}
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="benchmarks, in order: " + ", ".join(by_name))
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=list(by_name),
                    help="run only these benchmarks (their blocks alone are rewritten)")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, about a minute in all: prints the tables and never "
                         "rewrites docs/benchmarks.md (only a --docs copy)")
    ap.add_argument("--dry-run", action="store_true",
                    help="run, then show the diff of the docs instead of writing it")
    ap.add_argument("--docs", type=Path, default=None,
                    help="the Markdown file to rewrite (default: docs/benchmarks.md; "
                         "with --quick, a copy of it)")
    ap.add_argument("--timeout", type=float, default=3600,
                    help="seconds one benchmark may take before it is stopped (default 3600)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show each benchmark's own output as it runs")
    opts = ap.parse_args(argv)

    if opts.quick and opts.docs is not None and _is_project_docs(opts.docs):
        ap.error("quick results never go into docs/benchmarks.md: "
                 "leave out --docs (the tables are printed), or give a copy")
    # --quick alone prints its tables and writes nothing.
    write = not opts.dry_run and not (opts.quick and opts.docs is None)
    if opts.docs is None:
        opts.docs = DOCS
    selected = [by_name[n] for n in by_name if not opts.only or n in opts.only]
    for bench in selected:
        if not _NAME.fullmatch(bench.name):
            print(f"run_all: {bench.name!r} is not a marker name ([a-z0-9_]+)", file=sys.stderr)
            return 2
    try:
        original = opts.docs.read_text(encoding="utf-8")
        for bench in selected:  # before spending minutes on the runs
            _block(original, bench.name)
    except (OSError, DocsError) as e:
        print(f"run_all: {opts.docs}: {e}", file=sys.stderr)
        return 2

    load = os.getloadavg()[0]
    if not opts.quick and load > 1.0:
        print(f"run_all: load average {load:.2f} on {os.cpu_count()} cores: other work will "
              "slow these runs (each block records the load it started with)",
              file=sys.stderr, flush=True)
    blocks: dict[str, str] = {}
    failed: list[str] = []
    machines = {False: machine(), True: machine(Path(tempfile.gettempdir()))}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="amana-run-all-") as tmp:
        for n, bench in enumerate(selected, 1):
            args = bench.quick if opts.quick else bench.full
            shown = " ".join(["bench/" + bench.script, *args])
            print(f"[{n}/{len(selected)}] {bench.name}: {shown} ...", flush=True)
            when, load, t = datetime.now(UTC), os.getloadavg()[0], time.monotonic()
            try:
                result = run_one(bench, args, Path(tmp), verbose=opts.verbose,
                                 timeout=opts.timeout)
            except RuntimeError as e:
                print(f"[{n}/{len(selected)}] {bench.name}: FAILED after "
                      f"{_duration(time.monotonic() - t)}: {e}", file=sys.stderr, flush=True)
                failed.append(bench.name)
                continue
            took = time.monotonic() - t
            print(f"[{n}/{len(selected)}] {bench.name}: done in {_duration(took)}", flush=True)
            blocks[bench.name] = render(bench, result, args, quick=opts.quick, when=when,
                                        took=took, load=load, machine_line=machines[bench.disk])
    print(f"all done in {_duration(time.monotonic() - started)}", flush=True)

    if blocks:
        try:
            current = opts.docs.read_text(encoding="utf-8")  # as it is now, not at the start
            updated = replace_blocks(current, blocks)
        except (OSError, DocsError) as e:
            print(f"run_all: {opts.docs}: {e}; nothing written", file=sys.stderr)
            return 2
        if opts.dry_run:
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), updated.splitlines(keepends=True),
                str(opts.docs), f"{opts.docs} (new)"))
        elif not write:
            for name, inside in blocks.items():
                print(f"\n{begin_marker(name)}\n{inside}{end_marker(name)}")
            print(f"\nquick run: {opts.docs} left as it was")
        else:
            write_atomically(opts.docs, updated)
            print(f"{opts.docs}: {len(blocks)} table{'s' if len(blocks) > 1 else ''} "
                  f"rewritten ({', '.join(blocks)})")
    if failed:
        print(f"run_all: {len(failed)} failed, their blocks unchanged: {' '.join(failed)}; "
              f"again with: bench/run_all.py --only {' '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
