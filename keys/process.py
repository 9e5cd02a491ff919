"""Process hygiene: keep what a program holds in memory out of core dumps and debuggers.

The server holds plaintext reports in memory while it encrypts them, the offline client
decrypted reports and the desk's keys, the transfer commands the transfer credential.
A core dump would write any of it to disk, where it outlives the process. Every entry
point (intake-server, journalist-client, journalist-transfer) calls
:func:`harden_process` first thing.

Two settings, because neither is enough alone:

- ``RLIMIT_CORE`` 0 stops the kernel writing a core *file*; but when
  ``/proc/sys/kernel/core_pattern`` pipes dumps to a handler (systemd-coredump, apport,
  abrt: the default on most distributions), the limit is ignored and the handler
  receives and stores the whole memory image;
- ``prctl(PR_SET_DUMPABLE, 0)`` stops every core dump, piped or not, and also makes
  the process's ``/proc/<pid>/mem``, ``environ`` and friends, and ``ptrace`` attach,
  refused to other processes of the same user (root keeps ``CAP_SYS_PTRACE``).

``PR_SET_DUMPABLE`` is Linux's, reached through libc with ctypes (the standard library
has no ``prctl``). Elsewhere :func:`harden_process` sets only the resource limit and
says so in its result; nothing here raises. The flag is reset by ``execve`` in a child:
a program the client starts (the triager's editor) is dumpable again, which is why the
reply draft lives in RAM (journalist_client.draft), not in that program's care.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import resource
import sys
from typing import Final

__all__ = ["harden_process", "is_dumpable"]

# From <linux/prctl.h>; stable kernel ABI.
_PR_GET_DUMPABLE: Final = 3
_PR_SET_DUMPABLE: Final = 4


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    # use_errno: a refused prctl reports why through ctypes.get_errno().
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def harden_process() -> bool:
    """No core dumps of this process, piped to a handler or not; whether the
    non-dumpable flag is set (False off Linux, where only ``RLIMIT_CORE`` is set)."""
    # A hard limit of 0 too: code running later in this process cannot raise it again.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = _libc()
    if libc is None:
        return False
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        return False
    return not is_dumpable()


def is_dumpable() -> bool | None:
    """Whether this process may be dumped (``PR_GET_DUMPABLE``); None off Linux."""
    libc = _libc()
    if libc is None:
        return None
    return bool(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))
