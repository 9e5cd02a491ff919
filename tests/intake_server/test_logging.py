"""The server's log never carries what a request carried (issue 13, item 13).

``intake-server`` configures logging in __main__: records as "LEVEL name: message",
exceptions as their type and code locations, Python warnings as category and place
(once per place), and the event loop's errors the same way. Each is given text with
a marker here, as a hostile request would, and the marker must not come out.
(tests/integration/test_hostile_requests.py checks the real process end to end.)
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterator

import pytest

from intake_server import __main__ as cli

MARKER = "Mz93request-bytes"


@pytest.fixture
def server_logging() -> Iterator[None]:
    """The server's logging, set up inside the test (so that its handler writes to the
    stderr capsys captures then), and pytest's given back after it."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.raiseExceptions
    names = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.internal",
             "aiohttp.client", "aiohttp.websocket")
    quiet = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
             for name in names}
    with warnings.catch_warnings():
        yield
    root.handlers[:], root.level, logging.raiseExceptions = saved
    for name, (handlers, propagate) in quiet.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


def _configure() -> None:
    cli._configure_logging()  # noqa: SLF001
    cli._warned.clear()  # noqa: SLF001


def test_exceptions_are_logged_by_type_and_place(server_logging, capsys) -> None:
    _configure()
    try:
        raise ValueError(f"bad header {MARKER}")
    except ValueError:
        logging.getLogger("intake_server").exception("while reading")
    err = capsys.readouterr().err
    assert err.startswith("ERROR intake_server: while reading\n  ValueError at test_logging.py:")
    assert MARKER not in err


def test_warnings_are_logged_by_category_and_place_once(server_logging, capsys) -> None:
    _configure()
    for i in range(50):  # distinct texts, as a flood of distinct header values
        warnings.warn(f"{MARKER} {i}", RuntimeWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert MARKER not in err
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("WARNING intake_server: RuntimeWarning at test_logging.py:")


def test_event_loop_errors_are_logged_by_type_and_place(server_logging, capsys) -> None:
    _configure()
    async def failing() -> None:
        raise KeyError(MARKER)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(cli._on_loop_exception)  # noqa: SLF001
        task = asyncio.ensure_future(failing())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        del task  # never awaited: asyncio reports "exception was never retrieved"

    asyncio.run(main())
    import gc

    gc.collect()
    err = capsys.readouterr().err
    assert MARKER not in err
    assert "ERROR intake_server: event loop error: KeyError at test_logging.py:" in err


def test_a_failing_handler_prints_nothing_of_the_record(server_logging, capsys) -> None:
    """logging's own error report (a handler that cannot write) prints the record's
    message, its arguments and the traceback with its text: switched off."""
    _configure()
    logging.getLogger().handlers[0].setStream(_Closed())  # type: ignore[attr-defined]
    logging.getLogger("intake_server").warning("refused: %s", MARKER)
    assert MARKER not in capsys.readouterr().err


class _Closed:
    def write(self, text: str) -> None:
        raise ValueError("I/O operation on closed file")

    def flush(self) -> None:
        raise ValueError("I/O operation on closed file")
