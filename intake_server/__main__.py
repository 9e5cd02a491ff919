"""intake-server: init | serve | demo. A thin CLI over intake_server.install and create_app."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

__all__ = ["main"]

INIT_HELP = """\
Create a new installation in DIR: a commented config file (intake-server.toml),
the data directory and the server's Ed25519 signing key. Refuses to overwrite.

example:
  intake-server init --dir /var/lib/amana
  cp coalition-keyring.json /var/lib/amana/keyring.json
"""

SERVE_HELP = """\
Serve the source interface on 127.0.0.1 (the port from the config file).
Tor forwards the onion service to it; see deploy/.

example:
  intake-server serve --config /var/lib/amana/intake-server.toml
"""

DEMO_HELP = """\
Create a complete demo installation in DIR if there is none (two demo desks whose
age identities are written UNPROTECTED to DIR/desks/<desk>/identity.txt, a
keyring, a config) and serve it. Never use a demo install for real reports.

example:
  intake-server demo --dir ./demo --port 8080
  age -d -i demo/desks/triage/identity.txt demo/data/store/<id>.age
"""


def _configure_logging() -> None:
    # Our own messages only, no timestamps (the journal adds its own). aiohttp's
    # loggers are silenced: its error logger quotes the peer address.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.internal",
                 "aiohttp.client", "aiohttp.websocket"):
        quiet = logging.getLogger(name)
        quiet.handlers[:] = [logging.NullHandler()]
        quiet.propagate = False


def serve(config_path: Path, *, port: int | None = None) -> None:
    from aiohttp import web

    from .app import create_app
    from .config import Config

    config = Config.load(config_path)
    if port is not None:
        config = dataclasses.replace(config, port=port)
    app = create_app(config)
    url = f"http://127.0.0.1:{config.port}/"

    def announce(_: object) -> None:
        print(f"Amana intake server listening on {url}", flush=True)

    # 127.0.0.1 only, no access log; aiohttp's own banner replaced by ours.
    web.run_app(app, host="127.0.0.1", port=config.port, access_log=None, print=announce,
                shutdown_timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="intake-server",
        description="Amana encrypted incident-reporting intake: the source-facing server.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  intake-server demo --dir ./demo --port 8080")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("init", help="create a new installation", description=INIT_HELP,
                       formatter_class=fmt)
    p.add_argument("--dir", type=Path, required=True, help="installation directory")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p = sub.add_parser("serve", help="serve an installation", description=SERVE_HELP,
                       formatter_class=fmt)
    p.add_argument("--config", type=Path, required=True, help="path to intake-server.toml")
    p = sub.add_parser("demo", help="create (if absent) and serve a demo installation",
                       description=DEMO_HELP, formatter_class=fmt)
    p.add_argument("--dir", type=Path, required=True, help="demo directory")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    args = parser.parse_args(argv)

    from . import _fs
    from .config import ConfigError
    from .install import init_demo, init_install

    _configure_logging()
    try:
        if args.command == "init":
            path = init_install(args.dir, port=args.port)
            print(f"Created {path}\nNext: put the coalition keyring at "
                  f"{path.parent / 'keyring.json'}, then run\n"
                  f"  intake-server serve --config {path}")
        elif args.command == "serve":
            serve(args.config)
        else:
            path = init_demo(args.dir, port=args.port)
            print(f"Demo installation in {path.parent} (DEMO ONLY: desk keys are unprotected)",
                  flush=True)
            serve(path, port=args.port)
    except (ConfigError, _fs.FsError, FileNotFoundError, RuntimeError) as e:
        print(f"intake-server: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
