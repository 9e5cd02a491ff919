"""intake-server: a thin command line over intake_server.install, .operator and create_app.

One argparse parser; each command is a small function, set as the subparser's
``func``, over a library function of the same purpose. Exit status: 0 done, 1 a
runtime failure (one line on stderr, ``intake-server: error: ...``), 2 a usage error
(argparse's own). Library modules are imported by the commands, not at start-up, so
that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from keys import process

if TYPE_CHECKING:
    from aiohttp import web

    from keys.signing import SigningKey

    from .config import Config

__all__ = ["CLIError", "build_parser", "main"]

INIT_HELP = """\
Create a new installation in DIR: a commented config file (intake-server.toml),
the data directory and the server's Ed25519 signing key. Refuses to overwrite.

example:
  intake-server init --dir /var/lib/amana
  cp coalition-keyring.json /var/lib/amana/keyring.json
"""

SERVE_HELP = """\
Serve the source interface and the staff app on 127.0.0.1 (the ports from the
config file: port and staff_port). Tor forwards the public onion service to the
first and the client-authorised staff onion to the second; see deploy/.

example:
  intake-server serve --config /var/lib/amana/intake-server.toml
"""

ADD_KEY_HELP = """\
Register a transfer machine's key for a desk. A transfer key lets that machine
download the desk's ciphertext from the staff app, nothing more: acknowledgements
and replies must also be signed by the desk's own key.

example:
  intake-server desk add-transfer-key --config /var/lib/amana/intake-server.toml \\
      --desk triage ed25519:0uZ9wYJxV1CQ6uA4Yq0hQn8y3m6G6zUj2lQmXbS5c0g
"""

REMOVE_KEY_HELP = """\
Revoke a transfer machine's key for a desk (a lost or retired transfer machine).
Its next request to the staff app is refused.

example:
  intake-server desk remove-transfer-key --config /var/lib/amana/intake-server.toml \\
      --desk triage ed25519:0uZ9wYJxV1CQ6uA4Yq0hQn8y3m6G6zUj2lQmXbS5c0g
"""

DROP_LOST_HELP = """\
After `intake-keys keyring replace … --lost-key` (and a restart, whose log says how
many): release the desk's claim on the items encrypted to its lost key, which no one
can decrypt, as the desk's ack would. An item also addressed to other desks stays for
them; the others are deleted. See docs/key-rotation.md.

example:
  intake-server desk drop-lost-key-items --config /var/lib/amana/intake-server.toml \\
      --desk triage
"""

DESK_HELP = """\
Register or remove a transfer machine's key for a desk, or drop what was encrypted
to a desk's lost key.

example:
  intake-server desk add-transfer-key --config /var/lib/amana/intake-server.toml \\
      --desk triage ed25519:0uZ9wYJxV1CQ6uA4Yq0hQn8y3m6G6zUj2lQmXbS5c0g
"""

EXPORT_HELP = """\
For sites without a staff onion: write everything not yet acknowledged by a desk
into one signed bundle for a USB stick. The desk's offline client imports it and
writes an ack bundle, which `intake-server import` applies.

example:
  intake-server export --config /var/lib/amana/intake-server.toml --desk triage \\
      --out /media/usb/triage-export.bundle
"""

IMPORT_HELP = """\
Apply an ack or outbox (replies) bundle made by a desk's offline client, checked
exactly as the staff app checks it: signed by a desk of the keyring, every file
hashed, every item valid before anything changes.

example:
  intake-server import --config /var/lib/amana/intake-server.toml /media/usb/ack.bundle
"""

DEMO_HELP = """\
Create a complete demo installation in DIR if there is none (two demo desks in
DIR/desks/<desk>/, whose passphrase is kept beside their keys in passphrase.txt and
whose age identities are also written UNPROTECTED to identity.txt; a keyring; a
config) and serve it. Never use a demo install for real reports.

example:
  intake-server demo --dir ./demo --port 8080
  age -d -i demo/desks/triage/identity.txt demo/data/store/<id>.age
"""


class _NoDetailFormatter(logging.Formatter):
    """A record's own message, and for an exception its type and the code locations of
    its traceback: never the exception's text, which may quote what a client sent."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        exc_type, _, tb = ei
        where = ", ".join(f"{Path(f.filename).name}:{f.lineno}"
                          for f in traceback.extract_tb(tb))
        return f"  {getattr(exc_type, '__name__', 'exception')} at {where or '?'}"

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return ""


def _configure_logging() -> None:
    # Our own messages only, no timestamps (the journal adds its own). aiohttp's
    # loggers are silenced: its error logger quotes the peer address.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_NoDetailFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # A handler that fails to write must not fall back to logging's own report on
    # stderr, which prints the record's arguments and a full traceback.
    logging.raiseExceptions = False
    for name in ("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.internal",
                 "aiohttp.client", "aiohttp.websocket"):
        quiet = logging.getLogger(name)
        quiet.handlers[:] = [logging.NullHandler()]
        quiet.propagate = False
    _route_warnings()


# Python warnings, by (category, file, line): each is logged once per process.
_warned: set[tuple[type[Warning], str, int]] = set()


def _route_warnings() -> None:
    """Send Python warnings to our log, by type and code location only.

    aiohttp warns with what a client sent as the message: its multipart parser's
    ``BadContentDispositionHeader`` carries a part's header verbatim, and Python's
    default printed it on stderr once per distinct value. "always" keeps the warnings
    module from remembering each message it has shown (a registry that a flood of
    distinct values would grow without bound); _log_warning remembers places instead,
    of which there are few.
    """
    warnings.simplefilter("always")
    warnings.showwarning = _log_warning


def _log_warning(message: Warning | str, category: type[Warning], filename: str,
                 lineno: int, file: TextIO | None = None, line: str | None = None) -> None:
    where = (category, filename, lineno)
    if where in _warned:
        return
    _warned.add(where)
    logging.getLogger("intake_server").warning(
        "%s at %s:%d (its text is not logged)", category.__name__, Path(filename).name, lineno)


def _on_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's default handler prints the context: the exception's text and the repr
    of the task or future, either of which may quote a request. Type and place only."""
    exc = context.get("exception")
    if exc is None:
        logging.getLogger("intake_server").error("event loop error without an exception")
        return
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    logging.getLogger("intake_server").error("event loop error: %s at %s",
                                             type(exc).__name__, where)


def serve(config_path: Path, *, port: int | None = None,
          staff_port: int | None = None) -> None:
    import dataclasses

    from .config import Config
    from .operator import load_signing_key

    config = Config.load(config_path)
    if port is not None:
        config = dataclasses.replace(config, port=port)
    if staff_port is not None:
        config = dataclasses.replace(config, staff_port=staff_port)
    signing_key = load_signing_key(config_path)
    asyncio.run(_serve(config, signing_key))


def build_apps(config: Config, signing_key: SigningKey) -> tuple[web.Application,
                                                                  web.Application]:
    """The source app and the staff app of `serve`, sharing one Storage and one
    StaffStore: deletions by the staff side free quota at once, and what outgoing/ holds
    at start-up is counted once."""
    from .app import create_app
    from .staff import create_staff_app
    from .state import REPLIES

    source = create_app(config)
    staff = create_staff_app(config, signing_key=signing_key, store=source[REPLIES],
                             retention_days=config.retention_days)
    return source, staff


async def _serve(config: Config, signing_key: SigningKey) -> None:
    from aiohttp import web

    from .upload import LINGER_SECONDS, REQUEST_HEAD_SECONDS

    source, staff = build_apps(config, signing_key)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_on_loop_exception)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runners: list[web.AppRunner] = []
    try:
        # The source app first: it opens the storage the staff app shares.
        for app, app_port in ((source, config.port), (staff, config.staff_port)):
            # 127.0.0.1 only, no access log. auto_decompress=False: a body is never
            # inflated below the application, which refuses coded bodies anyway
            # (content_coding.py); every limit counts the bytes on the wire. On both
            # apps, a connection must send a complete request head within
            # REQUEST_HEAD_SECONDS of opening (or of its previous answer): aiohttp's
            # keep-alive timeout is what closes a connection still waiting for one; and
            # after an answer to a body not read to its end, the rest is read and
            # discarded for LINGER_SECONDS at most, not aiohttp's 10 s (upload.py).
            # The staff app the same: with aiohttp's own timing, a head dripped a byte
            # at a time kept its connection for 75 s, and nothing at all bounded a
            # signed body's pace (staff/app.py now holds it to pace.Pace).
            runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                   shutdown_timeout=5, auto_decompress=False,
                                   keepalive_timeout=REQUEST_HEAD_SECONDS,
                                   lingering_time=LINGER_SECONDS)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", app_port).start()
        print(f"Amana intake server listening on http://127.0.0.1:{config.port}/", flush=True)
        print(f"Amana staff app listening on http://127.0.0.1:{config.staff_port}/", flush=True)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


class CLIError(Exception):
    """A runtime failure, told in one line: exit status 1."""


@contextmanager
def _runtime_errors() -> Iterator[None]:
    """The library's expected failures (a bad config, a missing keyring, a refused
    bundle, ...) as CLIError; anything else is a bug and keeps its traceback."""
    from keys.fs import FsError
    from keys.keyring import KeyringError

    from .config import ConfigError
    from .operator import OperatorError
    from .staff.bundles import BundleRefused
    from .storage import StorageError

    try:
        yield
    except (ConfigError, FsError, FileNotFoundError, RuntimeError, OperatorError,
            BundleRefused, KeyringError, StorageError) as e:
        raise CLIError(str(e)) from e
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        # `make run` twice, or another program on the port: say what to do, in one line.
        raise CLIError("a port it needs on 127.0.0.1 is already in use (is another "
                       "intake-server running?): stop that one, or choose other ports, "
                       "e.g. `make run PORT=8090 DIR=/tmp/demo2` or `--port 8090`") from None


# -- commands: each a few lines over a library function -------------------------------

def cmd_init(args: argparse.Namespace) -> None:
    from .install import init_install

    path = init_install(args.dir, port=args.port)
    print(f"Created {path}\nNext: put the coalition keyring at "
          f"{path.parent / 'keyring.json'}, then run\n"
          f"  intake-server serve --config {path}")


def _without_numpy() -> None:
    """Keep numpy out of the serving process. sqlite-utils imports it whenever it is
    installed, and the client's charts install it (matplotlib). The server has no use
    for it, and OpenBLAS calls mbind(2) as it loads, which the systemd unit's
    SystemCallFilter forbids (~@resources): the kernel would kill the server with
    SIGSYS. A None entry in sys.modules makes ``import numpy`` raise ImportError, which
    sqlite-utils expects. Only for the commands that serve (main() calls it before
    anything is imported): tests call main() in their own process for the other
    commands, where numpy must stay importable."""
    sys.modules.setdefault("numpy", None)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> None:
    serve(args.config)


def cmd_add_transfer_key(args: argparse.Namespace) -> None:
    from .config import Config
    from .operator import add_transfer_key

    added = add_transfer_key(Config.load(args.config), args.desk, args.key)
    print(f"transfer key {'registered' if added else 'was already registered'} "
          f"for desk {args.desk}")


def cmd_remove_transfer_key(args: argparse.Namespace) -> None:
    from .config import Config
    from .operator import remove_transfer_key

    removed = remove_transfer_key(Config.load(args.config), args.desk, args.key)
    print(f"transfer key {'removed' if removed else 'was not registered'} "
          f"for desk {args.desk}")


def cmd_drop_lost_key_items(args: argparse.Namespace) -> None:
    from .config import Config
    from .operator import drop_lost_key_items

    result = drop_lost_key_items(Config.load(args.config), args.desk)
    print(f"desk {args.desk}: {result['released']} item(s) encrypted to its lost key "
          f"released, {result['deleted']} deleted from this server")


def cmd_export(args: argparse.Namespace) -> None:
    from keys.bundle import MAX_FILES

    from .config import Config
    from .operator import export_desk, load_signing_key
    from .staff.store import EXPORT_MAX_BYTES, EXPORT_MAX_ITEMS

    result = export_desk(Config.load(args.config), load_signing_key(args.config), args.desk,
                         args.out, args.after)
    print(f"{result['items']} item(s) for desk {args.desk} in {args.out}; "
          f"next time: --after {result['cursor']}")
    if result["more"]:
        print(f"More is waiting than one bundle holds ({EXPORT_MAX_ITEMS} "
              f"submissions, {MAX_FILES - 1:,} files or "
              f"{EXPORT_MAX_BYTES // 2**30} GiB): export again now with "
              f"--after {result['cursor']}.")


def cmd_import(args: argparse.Namespace) -> None:
    from .config import Config
    from .operator import import_bundle

    result = import_bundle(Config.load(args.config), args.bundle)
    if result["kind"] == "ack":
        print(f"desk {result['desk']}: {result['acknowledged']} acknowledged, "
              f"{result['deleted']} deleted from this server")
    else:
        print(f"desk {result['desk']}: {result['replies']} reply(ies) stored for "
              f"sources, {result['referrals']} referral(s) filed for other desks")


def cmd_demo(args: argparse.Namespace) -> None:
    from .install import init_demo

    path = init_demo(args.dir, port=args.port)
    print(f"Demo installation in {path.parent} (DEMO ONLY: desk keys are unprotected)",
          flush=True)
    serve(path, port=args.port, staff_port=args.staff_port)


# -- the parser --------------------------------------------------------------------

def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *,
             summary: str, description: str,
             func: Callable[[argparse.Namespace], None] | None = None,
             ) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    if func is not None:
        p.set_defaults(func=func)
    return p


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="path to intake-server.toml")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each leaf command has ``func`` set."""
    parser = argparse.ArgumentParser(
        prog="intake-server",
        description="Amana encrypted incident-reporting intake: the source-facing server.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  intake-server demo --dir ./demo --port 8080")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _command(sub, "init", summary="create a new installation", description=INIT_HELP,
                 func=cmd_init)
    p.add_argument("--dir", type=Path, required=True, help="installation directory")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")

    p = _command(sub, "serve", summary="serve an installation", description=SERVE_HELP,
                 func=cmd_serve)
    _config_arg(p)

    p = _command(sub, "desk", summary="register or remove a desk's transfer key",
                 description=DESK_HELP)
    desk_sub = p.add_subparsers(dest="desk_command", required=True)
    for name, what, text, func in (
            ("add-transfer-key", "register", ADD_KEY_HELP, cmd_add_transfer_key),
            ("remove-transfer-key", "remove", REMOVE_KEY_HELP, cmd_remove_transfer_key)):
        d = _command(desk_sub, name, summary=f"{what} a transfer machine's key for a desk",
                     description=text, func=func)
        _config_arg(d)
        d.add_argument("--desk", required=True, help="desk id from the keyring")
        d.add_argument("key", help="the transfer key (ed25519:...), from "
                                   "`journalist-transfer init`")
    d = _command(desk_sub, "drop-lost-key-items",
                 summary="release what was encrypted to a desk's lost key",
                 description=DROP_LOST_HELP, func=cmd_drop_lost_key_items)
    _config_arg(d)
    d.add_argument("--desk", required=True, help="desk id from the keyring")

    p = _command(sub, "export", summary="write a desk's new ciphertext to a bundle (USB)",
                 description=EXPORT_HELP, func=cmd_export)
    _config_arg(p)
    p.add_argument("--desk", required=True, help="desk id from the keyring")
    p.add_argument("--out", type=Path, required=True, help="bundle file to write (new)")
    p.add_argument("--after", type=int, default=0,
                   help="cursor printed by the previous export (default 0: everything unacked)")

    p = _command(sub, "import", summary="apply a desk's ack or outbox bundle (USB)",
                 description=IMPORT_HELP, func=cmd_import)
    _config_arg(p)
    p.add_argument("bundle", type=Path, help="the bundle file")

    p = _command(sub, "demo", summary="create (if absent) and serve a demo installation",
                 description=DEMO_HELP, func=cmd_demo)
    p.add_argument("--dir", type=Path, required=True, help="demo directory")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.add_argument("--staff-port", type=int, default=None,
                   help="staff app port on 127.0.0.1 (default: the config's, port + 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    # Plaintext reports pass through this process's memory: no core dumps (keys.process).
    process.harden_process()
    args = build_parser().parse_args(argv)  # a usage error exits 2 here
    if args.func in (cmd_serve, cmd_demo):
        _without_numpy()
    _configure_logging()
    try:
        with _runtime_errors():
            args.func(args)
    except CLIError as e:
        print(f"intake-server: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
