"""Run a parser on hostile input and hold it to its contract: only the error classes
it documents, and Python memory bounded while it runs (tracemalloc's peak).

tracemalloc sees what Python allocates (objects, bytes, decoded JSON, inflated zip
entries), not what a C library allocates on its own (OpenSSL's scrypt buffer), which
is bounded elsewhere (the scrypt work-factor limit).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

MIB = 1024 * 1024


class Unbounded(AssertionError):
    pass


def call_bounded(limit_bytes: int, parse: Callable[[], T],
                 allowed: tuple[type[BaseException], ...]) -> T | BaseException:
    """``parse()``'s result, or the allowed exception it raised (returned, so the
    caller can check it further). Any other exception propagates; a peak of traced
    memory above ``limit_bytes`` raises :class:`Unbounded`."""
    tracemalloc.start()
    try:
        try:
            result: T | BaseException = parse()
        except allowed as exc:
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if peak > limit_bytes:
        raise Unbounded(f"peak {peak / MIB:.1f} MiB over the {limit_bytes / MIB:.1f} MiB bound")
    return result
