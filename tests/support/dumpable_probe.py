"""Run one real entry point in this process, then say whether the process is dumpable.

    python dumpable_probe.py MODULE:FUNCTION [--wait-port PORT] -- ARGS...

The entry point runs exactly as its console script runs it; the probe only reads the
kernel's answer to ``prctl(PR_GET_DUMPABLE)`` with its own ctypes call (not the code
under test's) and prints ``dumpable=0`` or ``dumpable=1``. A command that returns is
probed after it returned; a server (``--wait-port``) is probed from a thread once the
port accepts connections, and the process then ends at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import os
import socket
import sys
import threading
import time

PR_GET_DUMPABLE = 3


def dumpable() -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return int(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def report_when_listening(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    print(f"dumpable={dumpable()}", flush=True)
    os._exit(0)


def main() -> None:
    target, *rest = sys.argv[1:]
    port = None
    if rest[:1] == ["--wait-port"]:
        port, rest = int(rest[1]), rest[2:]
    assert rest[:1] == ["--"]
    module, _, func = target.partition(":")
    entry = getattr(importlib.import_module(module), func)
    if port is not None:
        threading.Thread(target=report_when_listening, args=(port,), daemon=True).start()
    with contextlib.suppress(SystemExit):
        entry(rest[1:])
    print(f"dumpable={dumpable()}", flush=True)


if __name__ == "__main__":
    main()
