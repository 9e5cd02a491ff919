"""What a seized disk would show: the walk that finds any time finer than the day."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def times_finer_than_the_day(root: Path) -> list[str]:
    """Every entry under ``root`` (``root`` included) whose atime or mtime is not
    midnight UTC. Directories are listed with O_NOATIME: listing one would otherwise
    set its atime itself."""
    bad = []
    todo = [root]
    while todo:
        path = todo.pop()
        st = os.lstat(path)
        for what, ts in (("atime", st.st_atime_ns), ("mtime", st.st_mtime_ns)):
            if ts % (86400 * 10**9):
                bad.append(f"{what} {path.relative_to(root)}")
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME)
            try:
                todo += [path / name for name in os.listdir(fd)]
            finally:
                os.close(fd)
    return sorted(bad)
