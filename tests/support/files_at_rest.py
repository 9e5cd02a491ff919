"""What the files-at-rest tests check: modes 0600/0700 and times to the UTC day."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["assert_private_and_dated", "walk"]

DAY = 86400


def walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every name under ``root`` with its status, taken *before* the directory is read:
    listing a directory sets its atime (relatime does, once the atime is not after the
    mtime), and that would be the test's doing, not the program's."""
    st = os.lstat(root)
    yield root, st
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(root)):
            yield from walk(root / name)


def assert_private_and_dated(found: list[tuple[Path, os.stat_result]]) -> None:
    problems = []
    for p, st in found:
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            problems.append(f"{p}: neither a file nor a directory")
        if stat.S_IMODE(st.st_mode) != want:
            problems.append(f"{p}: mode {oct(stat.S_IMODE(st.st_mode))}")
        if st.st_mtime_ns % (DAY * 10**9) or st.st_atime_ns % (DAY * 10**9):
            problems.append(f"{p}: mtime {st.st_mtime_ns} atime {st.st_atime_ns}")
    assert not problems, "\n".join(problems)
