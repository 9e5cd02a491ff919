"""What a benchmark hands to bench/run_all.py: one table, the figures behind it, the setup.

Every bench script still prints its own prose; given ``--json PATH`` it also writes a
``Result`` there, and run_all renders that table between the benchmark's markers in
docs/benchmarks.md, so nothing has to be scraped from the prose. Also describes the
machine, from /proc, /sys and ``platform`` only: no host name, user or address, nothing
that names a person.

A benchmark script imports this module as ``bench_result`` (bench/ is the script's own
directory, so it is first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "amana-bench-result"
VERSION = 1
# Cells are rendered into a Markdown table between HTML-comment markers: a cell must not
# be able to end the block or the table.
_FORBIDDEN_IN_CELL = re.compile(r"<!--|-->|[\r\n]")

Scalar = int | float | str | bool | None


class ResultError(ValueError):
    """A result file that is not what a benchmark should have written."""


@dataclass
class Result:
    """One benchmark run: the table for docs/benchmarks.md and the raw figures."""

    benchmark: str
    setup: str  # one sentence: sizes, rounds, what the reference is
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    metrics: dict[str, Scalar] = field(default_factory=dict)  # raw numbers, for machines
    context: dict[str, str] = field(default_factory=dict)  # versions of what was measured

    def row(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ResultError(f"{self.benchmark}: a row of {len(cells)} cells, "
                              f"the table has {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "benchmark": self.benchmark,
                "setup": self.setup, "columns": self.columns, "rows": self.rows,
                "metrics": self.metrics, "context": self.context}

    def write(self, path: Path) -> None:
        _check(self)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n",
                        encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Result:
        """The result a benchmark wrote, checked: run_all trusts none of it blindly."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ResultError(f"{path.name}: not a readable result ({e})") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT \
                or data.get("version") != VERSION:
            raise ResultError(f"{path.name}: not an {FORMAT} version {VERSION} file")
        try:
            result = cls(benchmark=data["benchmark"], setup=data["setup"],
                         columns=data["columns"], rows=data["rows"],
                         metrics=data["metrics"], context=data["context"])
        except KeyError as e:
            raise ResultError(f"{path.name}: no {e.args[0]!r}") from e
        _check(result)
        return result


def _check(r: Result) -> None:
    def text(value: object, what: str) -> None:
        if not isinstance(value, str) or _FORBIDDEN_IN_CELL.search(value):
            raise ResultError(f"{r.benchmark}: {what} must be one line of text: {value!r}")

    text(r.benchmark, "the name")
    text(r.setup, "the setup")
    if not isinstance(r.columns, list) or not r.columns:
        raise ResultError(f"{r.benchmark}: no columns")
    for c in r.columns:
        text(c, "a column")
    if not isinstance(r.rows, list) or not r.rows:
        raise ResultError(f"{r.benchmark}: no rows")
    for row in r.rows:
        if not isinstance(row, list) or len(row) != len(r.columns):
            raise ResultError(f"{r.benchmark}: a row does not match the columns: {row!r}")
        for cell in row:
            text(cell, "a cell")
    if not isinstance(r.metrics, dict) or not all(
            isinstance(v, int | float | str | bool) or v is None for v in r.metrics.values()):
        raise ResultError(f"{r.benchmark}: metrics must map names to numbers or text")
    if not isinstance(r.context, dict):
        raise ResultError(f"{r.benchmark}: context must map names to text")
    for k, v in r.context.items():
        text(k, "a context name")
        text(v, "a context value")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the result there, for bench/run_all.py")


def count(n: int, noun: str) -> str:
    """``count(1, "round")`` is "1 round", ``count(3000, "report")`` "3,000 reports"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


# -- the machine ---------------------------------------------------------------------------

def _first(path: str, pattern: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(pattern, text, re.M)
    return m.group(1).strip() if m else None


def cpu_model() -> str:
    return _first("/proc/cpuinfo", r"^model name\s*:(.*)$") or platform.processor() \
        or platform.machine() or "unknown CPU"


def ram_gib() -> float | None:
    kib = _first("/proc/meminfo", r"^MemTotal:\s*(\d+) kB")
    return int(kib) / 2**20 if kib else None


def _in_vm() -> bool:
    flags = _first("/proc/cpuinfo", r"^flags\s*:(.*)$") or ""
    return "hypervisor" in flags.split()


def disk(directory: Path) -> str:
    """The file system holding ``directory`` and whether its device spins: what fsync costs."""
    try:
        dev = os.stat(directory).st_dev
    except OSError:
        return "unknown"
    major, minor = os.major(dev), os.minor(dev)
    fstype = "unknown file system"
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[2] == f"{major}:{minor}" and " - " in line:
                fstype = line.split(" - ", 1)[1].split()[0]
                break
    except OSError:
        pass
    if major == 0:  # no block device: tmpfs, overlay...
        return fstype
    if _in_vm():  # a virtual disk's "rotational" flag says nothing about the host's disk
        return f"{fstype} on a virtual disk"
    base = Path(f"/sys/dev/block/{major}:{minor}")
    for queue in (base / "queue", base / ".." / "queue"):  # a partition's disk holds queue/
        rotational = _first(str(queue / "rotational"), r"^(\d)")
        if rotational is not None:
            return f"{fstype} on a {'rotating disk' if rotational == '1' else 'non-rotating disk'}"
    return fstype


def machine(disk_dir: Path | None = None) -> str:
    """One line: CPU, cores, RAM, kernel, Python, and the disk of ``disk_dir`` if given."""
    ram = ram_gib()
    parts = [f"{cpu_model()} ({os.cpu_count()} cores{', virtual machine' if _in_vm() else ''})",
             f"{ram:.1f} GiB RAM" if ram else "RAM unknown",
             f"{platform.system()} {platform.release()}",
             f"{platform.python_implementation()} {platform.python_version()}"]
    if disk_dir is not None:
        parts.append(f"temp files on {disk(disk_dir)}")
    return ", ".join(parts)
