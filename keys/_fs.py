"""The old name of :mod:`keys.fs`, kept only for journalist_client until it adopts keys.fs.

Issue 12 moves every package onto the public ``keys.fs``; delete this module when
nothing imports ``keys._fs`` any more (``grep -rn "keys._fs\\|keys import _fs" .``).
"""

from keys.fs import AtomicWriter, FileExistsRefused, safe_mkdir
from keys.fs import atomic_write_bytes as safe_write_bytes

__all__ = ["AtomicWriter", "FileExistsRefused", "safe_mkdir", "safe_write_bytes"]
