"""Seeded, replayable kill points for the crash tests (issue 18).

A test draws where to SIGKILL a process from ``KillPoints``; the seed is random per run
and printed, and ``AMANA_CRASH_SEED=N`` replays a run's draws. Drawn by hashing the seed
and a counter (the ``random`` module is banned in this project, and a kill schedule
needs no more than this). ``ROUNDS`` is how many kills of each kind a test makes:
a few in `make test`, ``AMANA_SOAK_KILLS`` in `make soak`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable

ROUNDS = int(os.environ.get("AMANA_SOAK_KILLS", "3"))
SEED = int(os.environ.get("AMANA_CRASH_SEED") or secrets.randbits(32))


class KillPoints:
    """Numbers drawn from ``SEED`` (or ``seed``), the same sequence for the same seed."""

    def __init__(self, name: str, seed: int | None = None) -> None:
        self.seed = SEED if seed is None else seed
        self._name = name
        self._n = 0

    def below(self, n: int) -> int:
        """A number in [0, n)."""
        self._n += 1
        digest = hashlib.sha256(f"{self.seed}:{self._name}:{self._n}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % n

    def __str__(self) -> str:
        return f"AMANA_CRASH_SEED={self.seed}"


def kill_when(proc: subprocess.Popen[bytes], reached: Callable[[], bool],
              timeout: float = 60.0) -> bool:
    """SIGKILL ``proc`` as soon as ``reached()``, or after it has exited of itself;
    whether the kill came before it exited. Polled every millisecond."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not reached():
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.001)
    mid = proc.poll() is None
    if mid:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return mid


# A process that unlocks a vault (argv: vault dir, passphrase, "journal" or "image", item
# ids) and saves a note, then prints the save's number, over and over until killed: the
# kill -9 tests of the journal and of image writes (test_vault_journal.py,
# test_crash_client.py) count what it confirmed before the kill.
NOTE_SAVER = """
import sys
from journalist_client import triage
from journalist_client.vault import unlock
v = unlock(sys.argv[1], sys.argv[2])
if sys.argv[3] == "journal":
    v.start_journal()
ids = sys.argv[4:]
i = int(v.meta("counter") or 0)
while True:
    i += 1
    triage.add_note(v, ids[i % len(ids)], f"note {i}")
    v.set_meta("counter", str(i))
    v.save()
    print(i, flush=True)
"""
