"""What a process tree holds, read from /proc: memory (RSS, PSS) and open files.

The server is more than its own process: the codename and login worker pools are
processes of their own, each with Argon2id's 256 MiB work area while it derives. RSS
counts pages shared between them (the interpreter, libraries) once per process;
PSS shares them out, so the PSS of the tree is what the tree costs the machine.
Linux only (smaps_rollup: 4.14 and later).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TreeSample", "fd_count", "sample_tree", "tree_pids"]


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (those alive now)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
    return out


def _kib(path: str, field: str) -> int:
    try:
        text = Path(path).read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def fd_count(pid: int) -> int:
    """Open file descriptors of ``pid`` (sockets included)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return 0


@dataclass(frozen=True)
class TreeSample:
    processes: int
    rss_kib: int  # summed over the tree: shared pages counted in every process
    pss_kib: int  # summed over the tree: shared pages shared out
    server_rss_kib: int
    server_fds: int


def sample_tree(pid: int) -> TreeSample:
    pids = tree_pids(pid)
    return TreeSample(
        processes=len(pids),
        rss_kib=sum(_kib(f"/proc/{p}/status", "VmRSS") for p in pids),
        pss_kib=sum(_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids),
        server_rss_kib=_kib(f"/proc/{pid}/status", "VmRSS"),
        server_fds=fd_count(pid),
    )
