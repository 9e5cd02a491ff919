"""What journalist-client and journalist-transfer share: one error class, one way to
declare a command, one way to run it.

Exit status, in both (docs/cli.md): 0 success; 1 a runtime failure, reported on
stderr as one ``error:`` line; 2 a usage error (argparse's own code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["EXIT_FAILURE", "EXIT_OK", "CLIError", "Command", "add_command", "run_command"]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1

Command = Callable[[argparse.Namespace], None]


class CLIError(Exception):
    """A failure found by the command line itself (no vault given, bad passphrase file …)."""


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Command,
    help_: str,
    example: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with ``example``; running it calls ``func``."""
    sp = sub.add_parser(name, help=help_, description=help_, parents=list(parents),
                        epilog=f"Example:\n  {example}",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.set_defaults(func=func)
    return sp


def run_command(args: argparse.Namespace, failures: tuple[type[Exception], ...]) -> int:
    """Run the parsed command; an expected failure is one ``error:`` line and exit 1."""
    func: Command = args.func
    expected: tuple[type[Exception], ...] = (CLIError, *failures)
    try:
        func(args)
    except expected as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
