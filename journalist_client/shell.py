"""`journalist-client shell`: one unlocked session, many commands.

Every journalist-client command unlocks the vault (seconds of scrypt) and saves it
whole. A triager working through forty reports would wait minutes. The shell unlocks
once, runs the same commands with the same arguments (`list --status new`,
`show 3f9a`, `set 3f9a --status triaged`), and saves each change as a journal record
(ADR 10), so a command answers in milliseconds and is durable when it answers.

What the shell keeps:
- Command history, for the arrow keys, in memory only. It is never written to disk:
  notes and search terms are evidence.
- The vault, locked again when the shell ends. That happens on `exit`, on Ctrl-D, on
  SIGTERM or SIGHUP (a closed terminal), and after ``idle_minutes`` without a command
  at a terminal.

Lines are split like a shell's (shlex: quotes group words), but nothing is expanded and
nothing runs but journalist-client's own commands.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Final, TextIO

__all__ = ["IDLE_MINUTES", "run"]

IDLE_MINUTES: Final = 10.0
EXIT_WORDS: Final = frozenset({"exit", "quit"})


class _Idle(Exception):
    pass


class _Ended(Exception):
    pass


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Idle


def _on_end(_signum: int, _frame: FrameType | None) -> None:
    raise _Ended


@contextlib.contextmanager
def _signals(interactive: bool) -> Iterator[None]:
    """SIGTERM and SIGHUP end the session cleanly (the vault is locked and compacted);
    at a terminal SIGALRM measures idleness."""
    wanted = {signal.SIGTERM: _on_end, signal.SIGHUP: _on_end}
    if interactive:
        wanted[signal.SIGALRM] = _on_alarm
    old = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _history(commands: Sequence[str]) -> None:
    """Arrow-key history and Tab completion of command names, kept in memory only."""
    try:
        import readline  # noqa: PLC0415 - only for an interactive shell
    except ImportError:  # pragma: no cover - readline is part of Debian's Python
        return
    readline.clear_history()
    names = sorted(commands)

    def complete(text: str, state: int) -> str | None:
        hits = [n for n in names if n.startswith(text)]
        return hits[state] if state < len(hits) else None

    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")


def run(
    execute: Callable[[list[str]], int],
    *,
    prompt: str,
    commands: Sequence[str],
    idle_minutes: float = IDLE_MINUTES,
    timing: bool = False,
    stdin: TextIO | None = None,
) -> int:
    """Read commands until exit; ``execute`` runs one (argv without the program name)
    and returns its exit status. Returns 0, or 1 if the last command failed when input
    was not a terminal (so a script of commands can be checked)."""
    source = stdin or sys.stdin
    interactive = source.isatty()
    if interactive:
        _history(commands)
        print(f"Vault unlocked. Commands: {', '.join(sorted(commands))}.")
        print(f"Type `help COMMAND` for its options, `exit` or Ctrl-D to lock the vault "
              f"(locked too after {idle_minutes:g} minutes idle).")
    status = 0
    with _signals(interactive):
        while True:
            try:
                if interactive:
                    signal.setitimer(signal.ITIMER_REAL, idle_minutes * 60)
                    line = input(prompt)
                    signal.setitimer(signal.ITIMER_REAL, 0)
                else:
                    line = source.readline()
                    if not line:
                        break
            except EOFError:
                print()
                break
            except KeyboardInterrupt:
                print()  # a fresh prompt, as in any shell
                continue
            except _Idle:
                print(f"\nLocked after {idle_minutes:g} minutes without a command.")
                break
            except _Ended:
                break
            try:
                argv = shlex.split(line)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                status = 2
                continue
            if not argv:
                continue
            if argv[0] in EXIT_WORDS:
                break
            if argv[0] == "help":
                argv = [*argv[1:2], "--help"] if len(argv) > 1 else ["--help"]
            started = time.perf_counter()
            try:
                status = execute(argv)
            except KeyboardInterrupt:
                print("\ninterrupted; nothing of this command was saved", file=sys.stderr)
                status = 1
            except _Ended:
                break
            if timing:
                elapsed = (time.perf_counter() - started) * 1000
                print(f"[{argv[0]}: {elapsed:.1f} ms]", file=sys.stderr)
    return 0 if interactive else status
