"""The reply draft: the one plaintext file the offline client writes, kept in RAM.

Everything else the client writes goes through keys.fs. A draft is different: it is
made for an external editor ($VISUAL, $EDITOR) to write into, so it must be an ordinary
file with a path, and what it holds is the triager's plaintext reply to a source.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ram_draft"]


@contextlib.contextmanager
def ram_draft(prefix: str) -> Iterator[Path]:
    """An empty 0600 file for an editor to write a draft in, in RAM where possible.

    The draft is plaintext the triager writes to a source: /dev/shm is a tmpfs, so it
    never reaches a disk there. On leaving, it is overwritten with zeros and removed.
    """
    shm = Path("/dev/shm")  # noqa: S108 - RAM-backed by design, see above
    if not shm.is_dir():
        # The disk temp directory would keep the plaintext draft (zeroing it is not
        # reliable on SSDs or journaling file systems): refuse rather than fall back.
        raise OSError(errno.ENOENT, "no RAM-backed /dev/shm for the draft; write the reply "
                      "with --file FILE (on encrypted storage) or on standard input")
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".txt", dir=shm)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError), open(path, "r+b") as f:
            f.write(b"\0" * os.fstat(f.fileno()).st_size)
            f.flush()
            os.fsync(f.fileno())
        path.unlink(missing_ok=True)
