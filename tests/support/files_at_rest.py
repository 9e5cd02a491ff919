"""What a seized disk shows: the one walk of a directory tree, and what is checked on it.

Used by every test of what the server's data dir, its temp dir and logs, the vault and
the transfer machine's directory leave at rest (issue 13 item 9, issue 18 "what a
seized machine shows"):

- :func:`walk`: every name under a root with its status, the status taken before the
  directory is listed and directories listed with O_NOATIME, so that the walk itself
  sets no access time;
- :func:`times_finer_than_the_day`, :func:`assert_private_and_dated`: atimes and mtimes
  at midnight UTC, modes 0600/0700 (ctime and birth time cannot be set from user
  space: docs/threat-model.md lists them as residuals);
- :func:`search`: where any of some needles (a canary in every encoding, header values,
  IP addresses, file names) is in a file's content or in a name, read with O_NOATIME;
- :func:`fine_times_in_database`: any value in an SQLite database that looks like a
  time finer than the day, read from a copy so the database's own files stay untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

__all__ = ["assert_private_and_dated", "fine_times_in_database", "read_quietly", "search",
           "times_finer_than_the_day", "walk"]

DAY = 86400


def _listdir_quietly(path: Path) -> list[str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME)
    except PermissionError:  # O_NOATIME needs the owner: not ours, so not under test
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every name under ``root`` (``root`` included) with its status, taken *before* the
    directory is read: listing a directory sets its atime (relatime does, once the atime
    is not after the mtime), and that would be the test's doing, not the program's."""
    st = os.lstat(root)
    yield root, st
    if stat.S_ISDIR(st.st_mode):
        for name in _listdir_quietly(root):
            yield from walk(root / name)


def read_quietly(path: Path) -> bytes:
    """A file's content, read without setting its access time."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOATIME)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def times_finer_than_the_day(root: Path) -> list[str]:
    """Every entry under ``root`` (``root`` included) whose atime or mtime is not
    midnight UTC."""
    bad = []
    for path, st in walk(root):
        for what, ts in (("atime", st.st_atime_ns), ("mtime", st.st_mtime_ns)):
            if ts % (DAY * 10**9):
                bad.append(f"{what} {path.relative_to(root)}")
    return sorted(bad)


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


def search(roots: Path | Iterable[Path], needles: Mapping[str, bytes | re.Pattern[bytes]],
           ) -> list[str]:
    """Where a needle (bytes, or a regular expression) is found under ``roots``: in the
    content of a file, or in the name of a file or directory. ``roots`` may be files."""
    hits = []
    for root in [roots] if isinstance(roots, Path) else roots:
        for path, st in walk(root):
            name = os.fsencode(path.name)
            blob = read_quietly(path) if stat.S_ISREG(st.st_mode) else b""
            for what, needle in needles.items():
                for where, data in (("name", name), ("content", blob)):
                    found = needle.search(data) if isinstance(needle, re.Pattern) \
                        else needle in data
                    if found:
                        hits.append(f"{path} ({what} in its {where})")
    return hits


# A time of day (12:34, 05T12 as in 2026-12-05T12 or 20261205T1234, 12h34), or a POSIX
# time in seconds, milliseconds, microseconds or nanoseconds from 2001 to 2100, in
# text. Digits next to a time of day are not part of it, and the "T" needs the date's
# digits before it: CI once took a transfer key, "ed25519:968Ddj...TC92...", for a
# time twice over (19:96, T92); a bare T and two digits is in one base64 key in sixty.
_TIME_TEXT = re.compile(r"(?<!\d)\d{1,2}:[0-5]\d(?!\d)|\d{2}-?\d{2}T\d{2}"
                        r"|\b\d{1,2}h\d{2}\b|\b[1-4]\d{9}(\d{3}){0,3}\b")
_EPOCH_LOW, _EPOCH_HIGH = 978307200, 4102444800  # 2001-01-01, 2100-01-01


def looks_like_a_time(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return any(_EPOCH_LOW <= value / scale < _EPOCH_HIGH
                   for scale in (1, 10**3, 10**6, 10**9))
    if isinstance(value, str):
        return _TIME_TEXT.search(value) is not None
    return False


def fine_times_in_database(db: Path, scratch: Path | None = None) -> list[str]:
    """Every value of every table in the SQLite database ``db`` (with its WAL) that
    looks like a time finer than the day: ``table.column = value``. Read from a copy
    (in ``scratch``, or the test's temp dir): opening the database itself would set its
    files' access times."""
    found = []
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        copy = Path(tmp) / db.name
        for suffix in ("", "-wal"):
            src = db.with_name(db.name + suffix)
            with contextlib.suppress(FileNotFoundError):
                (Path(tmp) / src.name).write_bytes(read_quietly(src))
        with contextlib.closing(sqlite3.connect(copy)) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                cur = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the schema
                columns = [d[0] for d in cur.description]
                for row in cur:
                    found += [f"{table}.{c} = {v!r}" for c, v in zip(columns, row, strict=True)
                              if looks_like_a_time(v)]
    return found
